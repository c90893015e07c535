"""keras-cnnkit: CNN efficiency blocks, builders and a model linter for Keras 3.

Importing the top-level package is cheap: it imports neither Keras nor
TensorFlow.  ``keras_cnnkit.layers`` and ``keras_cnnkit.models`` import Keras
when first touched; the static linter path (``keras_cnnkit.analysis`` and the
``cnnkit-lint`` command on model files) never does.

``import keras_cnnkit`` registers every block with Keras' serialisation, so that
``keras.models.load_model("m.keras")`` finds ``keras_cnnkit>Bottleneck1x1`` and the
rest: at once when Keras is already imported, else the moment Keras is imported
(a one-shot import hook; the linter path, which never imports Keras, pays nothing).
"""
import importlib
import importlib.abc
import importlib.util
import sys
import warnings

__version__ = "0.1.0"

# ``keras_cnnkit.lint`` is a callable module: ``keras_cnnkit.lint(model)`` lints.
_LAZY_SUBMODULES = ("layers", "models", "analysis", "blockspec", "lint", "bench", "export",
                    "latency", "budgets")
_LAZY_ATTRS = {
    "Report": ("keras_cnnkit.lint.api", "Report"),
    "list_models": ("keras_cnnkit.models", "list_models"),
    "create_model": ("keras_cnnkit.models", "create_model"),
}


def __getattr__(name):
    """Resolve submodules and public names on first use (PEP 562)."""
    if name in _LAZY_ATTRS:
        module_name, attr = _LAZY_ATTRS[name]
        return getattr(importlib.import_module(module_name), attr)
    if name.startswith("build_"):
        return getattr(importlib.import_module("keras_cnnkit.models"), name)
    if name in _LAZY_SUBMODULES:
        return importlib.import_module(f"keras_cnnkit.{name}")
    raise AttributeError(f"module 'keras_cnnkit' has no attribute {name!r}")


def _register_blocks() -> None:
    """Import :mod:`keras_cnnkit.layers`, whose classes register themselves with Keras."""
    try:
        importlib.import_module("keras_cnnkit.layers")
    except Exception as exc:  # pylint: disable=broad-exception-caught
        # A failure here must not make ``import keras`` fail for everyone else.
        warnings.warn(f"keras_cnnkit: blocks not registered with Keras ({exc})",
                      RuntimeWarning, stacklevel=2)


class _RegisterOnKerasImport(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """One-shot import hook: once ``keras`` has been imported, register the blocks.

    It finds ``keras`` through the other finders and wraps that spec's loader, so Keras
    loads exactly as it would without it; then it removes itself.
    """

    def __init__(self):
        self.loader = None

    def find_spec(self, fullname, path=None, target=None):  # pylint: disable=unused-argument
        """Wrap the real spec of ``keras``; ignore every other module."""
        if fullname != "keras":
            return None
        _remove_hook()
        spec = importlib.util.find_spec("keras")
        if spec is None or spec.loader is None:
            return spec
        self.loader = spec.loader
        spec.loader = self
        return spec

    def create_module(self, spec):
        """Keras' own loader makes the module."""
        spec.loader = self.loader
        try:
            return self.loader.create_module(spec)
        finally:
            spec.loader = self

    def exec_module(self, module):
        """Run Keras' ``__init__``, then register the blocks."""
        module.__spec__.loader = self.loader
        module.__loader__ = self.loader
        self.loader.exec_module(module)
        _register_blocks()


def _remove_hook() -> None:
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _RegisterOnKerasImport)]


if "keras" in sys.modules:
    _register_blocks()
elif not any(isinstance(f, _RegisterOnKerasImport) for f in sys.meta_path):
    sys.meta_path.insert(0, _RegisterOnKerasImport())
