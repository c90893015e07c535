"""Saved models of installed model libraries (keras-hub backbones, kimm models) → built
with that library → the live frontend.

A keras-hub ``ResNetBackbone`` or a kimm ``RepVGGA0`` is a Functional *subclass*: its
``.keras`` file holds the class's constructor arguments (``config.json``:
``{"module": "kimm._src.models.repvgg", "class_name": "RepVGGA0", "config": {...}}``),
not a layer graph, so nothing in the file says what the model computes.  The library
that defines the class does: this module builds the model with it and hands the result
to :func:`~keras_cnnkit.analysis.frontends.keras_live.graph_from_keras`.

The security boundary.  Building runs installed code (the library's), never code from
the file, and only under these conditions:

* the class's top-level package is one of :data:`LIBRARIES` (keras-hub, kimm) and is
  installed; no module the file names is ever imported (the library is imported by its
  own package name, and the class is looked up among the classes it defines and
  exposes: ``kimm.models.RepVGGA0``);
* the class is a ``keras.Model`` defined by that package (``__module__``), registered
  with Keras by it, or a subclass of a class it registered (kimm registers its base
  classes: ``"kimm>RepVGG"``); a name the library does not define is refused;
* every object serialized inside the config is one of :data:`ALLOWED_NESTED` (Keras'
  dtype policies, initializers, regularizers, constraints): a ``Lambda``, a function,
  a class of any other module (``{"module": "os", "class_name": "system"}``) is
  refused before the library is even imported;
* arguments that would make the library fetch or read files are neutralised (kimm's
  ``weights`` becomes ``None``);
* the class's ``from_config`` runs inside Keras' safe mode (``SafeModeScope(True)``),
  whatever the process set with ``keras.config.enable_unsafe_deserialization``.

The weights are not loaded: the parameters are the built model's (``count_params()``),
and the stored weight count is compared with them.  The graph's notes say which library
(and version) built the model.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.metadata
import importlib.util
import math
from typing import Any, Optional, Sequence

from keras_cnnkit.analysis.ir import Graph
from keras_cnnkit.errors import ModelFileError

#: Deepest nesting of the config walked.
MAX_DEPTH = 64


@dataclasses.dataclass(frozen=True)
class Library:
    """A model library whose registered classes may be built.

    Attributes:
        package: its top-level package (what a file's ``module`` starts with).
        distribution: its name on PyPI (for the version in the notes).
        namespace: the attribute of the package exposing its model classes.
        neutral: constructor arguments forced to a harmless value.
    """

    package: str
    distribution: str
    namespace: str
    neutral: tuple = ()


#: The libraries whose saved models are built (by top-level package).
LIBRARIES = {
    "keras_hub": Library("keras_hub", "keras-hub", "models"),
    "kimm": Library("kimm", "kimm", "models", (("weights", None),)),
}

#: Objects a library model's config may serialize inside it: ``(module, class_name)``;
#: a class name ``"*"`` allows every class of that Keras module.
ALLOWED_NESTED = frozenset({
    ("keras", "DTypePolicy"), ("keras", "FloatDTypePolicy"),
    ("keras.initializers", "*"), ("keras.regularizers", "*"), ("keras.constraints", "*"),
})


def library_of(config: Any) -> Optional[Library]:
    """The :class:`Library` a top-level model config names by its ``module``, when its
    class is not a plain Functional or Sequential (``None`` otherwise).  Imports
    nothing."""
    if not isinstance(config, dict):
        return None
    body = config.get("config")
    if isinstance(body, dict) and isinstance(body.get("layers"), list):
        return None
    module = config.get("module")
    if not isinstance(module, str):
        return None
    return LIBRARIES.get(module.split(".")[0])


def _installed(library: Library) -> Optional[str]:
    """The installed version of ``library``, ``None`` when it is not installed (found
    without importing it)."""
    if importlib.util.find_spec(library.package) is None:
        return None
    try:
        return importlib.metadata.version(library.distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown version"


def check_nested(path: str, value: Any) -> None:
    """Refuse a config that serializes any object outside :data:`ALLOWED_NESTED`
    (a ``Lambda``, a function, a class of another module) at any depth."""
    stack = [(value, "config", 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise ModelFileError(path, f"{where}: config nested more than {MAX_DEPTH} deep")
        if isinstance(item, dict):
            if "class_name" in item:
                module = item.get("module")
                name = item.get("class_name")
                if (module, name) not in ALLOWED_NESTED and (module, "*") not in ALLOWED_NESTED:
                    raise ModelFileError(
                        path, f"{where}: the config holds a serialized {module}.{name}; "
                              "a library model is built only from plain arguments and "
                              "Keras' own dtype policies, initializers, regularizers and "
                              "constraints")
                if item.get("registered_name") not in (None, name) or name in (
                        "Lambda", "__lambda__", "function"):
                    raise ModelFileError(path, f"{where}: refused object {name!r}")
            stack.extend((v, f"{where}.{k}", depth + 1) for k, v in item.items())
        elif isinstance(item, list):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(item))


def _model_class(path: str, library: Library, config: dict):
    """The class the file names, looked up in the (imported) library; checked."""
    import keras

    class_name = config.get("class_name")
    if not isinstance(class_name, str) or not class_name.isidentifier():
        raise ModelFileError(path, f"bad top-level class name {str(class_name)[:60]!r}")
    try:
        package = importlib.import_module(library.package)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # a broken install fails its import in any way: the file is not at fault
        raise ModelFileError(path, f"a {library.distribution} model ({class_name}), but the "
                                   f"installed {library.distribution} cannot be imported "
                                   f"({type(exc).__name__}: {str(exc)[:200]})") from None
    namespace = getattr(package, library.namespace, None)
    cls = getattr(namespace, class_name, None) if namespace is not None else None
    if not isinstance(cls, type) or not issubclass(cls, keras.Model) or \
            cls.__module__.split(".")[0] != library.package:
        raise ModelFileError(path, f"{library.distribution} defines no model class "
                                   f"{class_name!r} (the file names "
                                   f"{config.get('module')}.{class_name})")
    registered = config.get("registered_name")
    if not any(keras.saving.get_registered_name(base).startswith(f"{library.package}>")
               for base in cls.__mro__ if issubclass(base, keras.Model)) and (
            keras.saving.get_registered_object(registered) is not cls):
        raise ModelFileError(path, f"{library.distribution}'s {class_name} is not registered "
                                   "with Keras")
    return cls


def build_model(path: str, library: Library, config: dict):
    """The model ``config`` describes, built by ``library`` (see the module docstring).

    Returns ``(model, version)``.  Raises :class:`ModelFileError` for a library that is
    not installed, a class it does not define, a refused config or a build that fails.
    """
    version = _installed(library)
    if version is None:
        raise ModelFileError(path, f"a {library.distribution} model "
                                   f"({config.get('class_name')}): install "
                                   f"{library.distribution} to lint it, or save it as a "
                                   "plain Functional model (keras.Model(m.inputs, m.outputs))")
    body = config.get("config")
    if not isinstance(body, dict):
        raise ModelFileError(path, "the model's 'config' is not a JSON object")
    check_nested(path, body)
    cls = _model_class(path, library, config)
    from keras.src.saving.serialization_lib import SafeModeScope

    arguments = dict(body, **dict(library.neutral))
    try:
        with SafeModeScope(True):
            model = cls.from_config(arguments)
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # The library's own constructor may reject the arguments in any way.
        raise ModelFileError(path, f"{library.distribution} could not build "
                                   f"{config.get('class_name')} from the file's config "
                                   f"({type(exc).__name__}: {str(exc)[:200]})") from None
    return model, version


def load_library_model(path: str, library: Library, config: dict,
                       stored: Optional[int] = None,
                       input_shape: Optional[Sequence[int]] = None) -> Graph:
    """The IR graph of a saved library model (see the module docstring).

    ``stored``: the number of weight values the file stores (``None`` without weights),
    compared with the built model's parameters.
    """
    from keras_cnnkit.console import import_keras
    import_keras()    # without TensorFlow's start-up lines on stderr
    from keras_cnnkit.analysis.frontends.keras_live import graph_from_keras

    model, version = build_model(path, library, config)
    try:
        graph = graph_from_keras(model, input_shape=None if input_shape is None
                                 else tuple(int(d) for d in input_shape),
                                 size_option="--input-shape")
    except ValueError as exc:
        raise ModelFileError(path, str(exc)) from None
    graph.source, graph.frontend = path, "library"
    params = model.count_params()
    graph.notes.insert(0, f"built with {library.distribution} {version} from the file's "
                          f"config ({config.get('class_name')}); no code from the file ran, "
                          "its weights were not loaded")
    if stored is not None and stored != params:
        graph.notes.append(f"the file stores {stored:,} weight values, the built model has "
                           f"{params:,} parameters (the rest: non-parameter state such as "
                           "random seeds)" if stored > params else
                           f"the file stores {stored:,} weight values, fewer than the "
                           f"{params:,} parameters of the built model: its config may not "
                           "match its weights")
    return graph


def stored_values(weight_shapes: Optional[dict]) -> Optional[int]:
    """The number of weight values a ``.keras`` archive stores (``None``: none)."""
    if weight_shapes is None:
        return None
    return sum(math.prod(shape) for _, shapes in weight_shapes.values() for shape in shapes)
