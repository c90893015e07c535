"""Resource budgets for reading untrusted model files: checked before the work, not after.

A model file is data from anyone.  A few hundred bytes can ask for a block of five
million layers, a zip member can inflate a thousandfold, an HDF5 file can link back to
its own root, an ONNX graph can ask numpy for billions of elements.  Each reader checks
what the file asks for against a *budget* before it does the work (before expanding,
inflating, parsing, walking or allocating), and a file over budget is refused with
:class:`BudgetError`: exit status 2 and one line naming the budget, its limit and the
file's value::

    cnnkit-lint: error: bomb.keras: over budget max-nodes: the model expands to
    1,400,001 layers by layer 'blk' (DenseBlock); the limit is 100,000 (raise it with
    --budget max-nodes=N or in [tool.cnnkit-lint.budgets])

The budgets, with their defaults (every real model we know fits well inside each; the
largest we lint — NASNetLarge, EfficientNetB7, ConvNeXtXLarge, ResNetRS420, VGG19,
among 438 corpus files — are measured by ``tests/test_budgets_corpus.py``):

=====================  ================  ==================================================
budget                 default           what it bounds
=====================  ================  ==================================================
``max-nodes``          100,000           layers a model expands to: nested models once per
                                         call, composite blocks as their ops (largest real
                                         model: 2,258, ResNetRS420)
``max-kernel-size``    8,192             a kernel or pool window along one axis (real: 16;
                                         large-kernel nets use 51)
``max-channels``       16,777,216        filters, units and other widths (real: 8,192;
                                         text vocabularies reach 250,000)
``max-json-bytes``     32 MiB            a JSON config, read or inflated (real: 1.6 MB)
``max-json-values``    2,000,000         values in a JSON config, counted before parsing
                                         (real: 96,386)
``max-json-depth``     256               nesting of a JSON config (real: 11; 64 nested
                                         models need about 200)
``max-h5-links``       200,000           HDF5 links followed in one file (real: 8,530)
``max-h5-path-depth``  128               groups in one HDF5 path (real: 9)
``max-inflated-bytes`` 4 GiB             bytes inflated from one zip member (real: 1.4 GB,
                                         ConvNeXtXLarge's weights)
``max-zip-ratio``      100               inflated ÷ compressed size of a zip member over
                                         1 MiB (real: 1, stored; deflated weights ~1.1)
``max-zip-members``    10,000            members of a ``.keras`` archive (real: 3)
``max-const-elements`` 4,194,304         elements an ONNX op evaluated at load time may
                                         create (real: 4)
``max-shape-dims``     1,000,000         dimensions ONNX shape inference may record: each
                                         tensor's rank, and each element of a 1-D tensor
                                         it propagates (real: 2,262)
``max-params``         1,000,000,000     parameters of a model that ``--fix``,
                                         ``--benchmark`` or ``cnnkit-export`` hands to Keras
                                         (real: 350 million, ConvNeXtXLarge)
``max-input-values``   67,108,864        values of one sample of a model's inputs that
                                         ``--fix`` or ``cnnkit-export`` hands to Keras
                                         or draws to verify an export
                                         (2**26, a 4,730 × 4,730 RGB image; real:
                                         1,080,000, EfficientNetB7's 600 × 600 × 3; a
                                         declared 10⁹ × 10⁹ input crashed tf2onnx)
=====================  ================  ==================================================

One limit is not a budget, since no setting can lift it: a size (a dimension, an element
count, a weight count) beyond a signed 64-bit integer (:data:`INT64_MAX`) is refused as
``int64``.

Setting them:

* configuration: ``[tool.cnnkit-lint.budgets]`` in ``pyproject.toml`` (``max-nodes =
  500_000``), or a ``budgets`` key of ``setup.cfg``/``tox.ini``'s ``[cnnkit-lint]`` with
  one ``name: value`` per line; ``--budget NAME=VALUE`` on the command line;
* Python: ``keras_cnnkit.lint(path, budgets={"max-nodes": 500_000})``, ``with
  keras_cnnkit.budgets.using(max_nodes=500_000): ...``, or
  :func:`set_default` for the whole process.

Pure Python; imports nothing but :mod:`keras_cnnkit.errors`.
"""
from __future__ import annotations

import contextlib
import contextvars
import dataclasses
from typing import Any, Iterator, Mapping, Optional, Union

from keras_cnnkit.errors import ConfigError, ModelFileError, PathLike

__all__ = ["INT64_MAX", "BudgetError", "Budgets", "DEFAULT", "check", "check_int64",
           "check_node", "current", "names", "parse_assignment", "parse_budgets",
           "set_default", "using"]

#: Largest size a model may give anything: what a signed 64-bit integer holds.
INT64_MAX = 2 ** 63 - 1

_MIB = 2 ** 20


@dataclasses.dataclass(frozen=True)
class Budgets:
    """The budgets of one run; see the module docstring for each one's meaning.

    Attribute names use underscores (``max_nodes``); configuration keys and messages use
    hyphens (``max-nodes``).
    """

    max_nodes: int = 100_000
    max_kernel_size: int = 8_192
    max_channels: int = 2 ** 24
    max_json_bytes: int = 32 * _MIB
    max_json_values: int = 2_000_000
    max_json_depth: int = 256
    max_h5_links: int = 200_000
    max_h5_path_depth: int = 128
    max_inflated_bytes: int = 4 * 1024 * _MIB
    max_zip_ratio: int = 100
    max_zip_members: int = 10_000
    max_const_elements: int = 2 ** 22
    max_shape_dims: int = 1_000_000
    max_params: int = 1_000_000_000
    max_input_values: int = 2 ** 26

    def __post_init__(self):
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError("budgets", f"{key_of(field.name)} must be a positive "
                                             f"integer, got {value!r}")

    def replace(self, **changes: int) -> "Budgets":
        """A copy with some budgets changed (``max_nodes=...`` or ``"max-nodes"`` keys)."""
        return parse_budgets(changes, base=self)

    def to_dict(self) -> dict:
        """``{"max-nodes": 100000, ...}``."""
        return {key_of(f.name): getattr(self, f.name) for f in dataclasses.fields(self)}


DEFAULT = Budgets()


def key_of(attribute: str) -> str:
    """``max_nodes`` → ``max-nodes``."""
    return attribute.replace("_", "-")


def names() -> list:
    """Every budget's configuration key, in declaration order."""
    return [key_of(f.name) for f in dataclasses.fields(Budgets)]


def parse_budgets(values: Union[None, "Budgets", Mapping[str, Any]],
                  source: str = "budgets", base: Optional["Budgets"] = None) -> "Budgets":
    """``base`` (default :data:`DEFAULT`) with the budgets ``values`` names changed.

    ``values``: a :class:`Budgets` (returned as is), ``None``, or a mapping of keys
    (``"max-nodes"`` or ``"max_nodes"``) to positive integers (``"2_000_000"`` and
    ``"64 MiB"``-free plain digits are accepted as strings, for INI files).

    Raises:
        ConfigError: an unknown budget or a value that is not a positive integer.
    """
    if isinstance(values, Budgets):
        return values
    base = base or DEFAULT
    if not values:
        return base
    if not isinstance(values, Mapping):
        raise ConfigError(source, "budgets must map budget names to integers")
    known = {f.name for f in dataclasses.fields(Budgets)}
    changes = {}
    for key, value in values.items():
        attribute = str(key).strip().replace("-", "_")
        if attribute not in known:
            raise ConfigError(source, f"unknown budget {key!r} (known: {', '.join(names())})")
        changes[attribute] = _positive(value, key_of(attribute), source)
    return dataclasses.replace(base, **changes)


def _positive(value: Any, key: str, source: str) -> int:
    if isinstance(value, str):
        text = value.strip().replace("_", "").replace(",", "")
        value = int(text) if text.isdigit() and len(text) <= 30 else None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(source, f"budget {key} must be a positive integer, got {value!r}")
    return value


def parse_assignment(text: str, source: str = "--budget") -> tuple:
    """``"max-nodes=500000"`` → ``("max-nodes", 500000)`` (checked)."""
    name, sep, value = str(text).partition("=")
    if not sep:
        name, sep, value = str(text).partition(":")
    if not sep or not name.strip():
        raise ConfigError(source, f"{text!r}: expected NAME=VALUE, e.g. max-nodes=500000")
    parsed = parse_budgets({name.strip(): value}, source)
    attribute = name.strip().replace("-", "_")
    return key_of(attribute), getattr(parsed, attribute)


_DEFAULT_BUDGETS = [DEFAULT]
_CURRENT: contextvars.ContextVar = contextvars.ContextVar("keras_cnnkit_budgets",
                                                          default=None)


def current() -> Budgets:
    """The budgets in force: those of the innermost :func:`using`, else the default."""
    return _CURRENT.get() or _DEFAULT_BUDGETS[0]


def set_default(budgets: Union[None, Budgets, Mapping[str, Any]] = None, **changes) -> Budgets:
    """Set the process-wide budgets (``None`` and no changes: back to :data:`DEFAULT`)."""
    value = parse_budgets(budgets, base=DEFAULT) if budgets is not None else DEFAULT
    if changes:
        value = parse_budgets(changes, base=value)
    _DEFAULT_BUDGETS[0] = value
    return value


@contextlib.contextmanager
def using(budgets: Union[None, Budgets, Mapping[str, Any]] = None,
          **changes) -> Iterator[Budgets]:
    """Run a block under other budgets: ``with using(max_nodes=500_000): lint(path)``.

    ``budgets`` (a :class:`Budgets` or a mapping) replaces the current budgets, then
    ``changes`` change single ones; ``None`` and no changes keep the current ones.
    """
    value = parse_budgets(budgets, base=current()) if budgets is not None else current()
    if changes:
        value = parse_budgets(changes, base=value)
    token = _CURRENT.set(value)
    try:
        yield value
    finally:
        _CURRENT.reset(token)


class BudgetError(ModelFileError):
    """A model file asks for more than a budget allows; nothing was done for it.

    Attributes:
        budget: the budget's key (``"max-nodes"``; ``"int64"`` for the fixed limit).
        limit: the budget's value.
        value: what the file asks for (a lower bound where counting stopped at the limit).
        path / problem: as for :class:`~keras_cnnkit.errors.ModelFileError`.
    """

    def __init__(self, path: PathLike, budget: str, value: int, limit: int, what: str):
        self.budget, self.value, self.limit = budget, value, limit
        if budget == "int64":
            problem = f"{what}; not a real model (sizes stop at 2**63 - 1)"
        else:
            problem = (f"over budget {budget}: {what}; the limit is {limit:,} (raise it "
                       f"with --budget {budget}=N or in [tool.cnnkit-lint.budgets])")
        super().__init__(path, problem)


def check(path: PathLike, budget: str, value: int, what: str) -> int:
    """Raise :class:`BudgetError` when ``value`` exceeds the current budget ``budget``
    (a key, ``"max-nodes"``); returns ``value``.  ``what`` describes the value in words,
    with it (``"the model expands to 1,400,004 layers"``)."""
    limit = getattr(current(), budget.replace("-", "_"))
    if value > limit:
        raise BudgetError(path, budget, value, limit, what)
    return value


def check_int64(path: PathLike, value: int, what: str) -> int:
    """Refuse a size beyond a signed 64-bit integer (``value`` may be astronomically
    large: its digits are estimated, never printed)."""
    if abs(value) > INT64_MAX:
        digits = int(abs(value).bit_length() * 0.30103) + 1
        raise BudgetError(path, "int64", digits, INT64_MAX,
                          f"{what} has about {digits:,} digits, more than a 64-bit integer "
                          "holds")
    return value


#: IR attributes holding kernel or pool window sizes, and declared widths.
_KERNEL_ATTRS = ("kernel", "pool_size")
_WIDTH_ATTRS = ("filters", "units", "output_dim", "input_dim")
#: Attribute groups whose product is a weight count (a conv's kernel × in × out).
_WEIGHT_PRODUCTS = (("kernel", "in_channels", "filters"), ("in_features", "units"),
                    ("input_dim", "output_dim"))


def _ints(value) -> list:
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, (list, tuple)):
        return [v for v in value if isinstance(v, int) and not isinstance(v, bool)]
    return []


def check_node(path: PathLike, node, count: int) -> None:
    """Check one IR node as a frontend adds it to a graph (the ``count``-th node):
    ``max-nodes``, the kernel sizes and widths it declares (``max-kernel-size``,
    ``max-channels``), and that its shape, element count, parameter count and weight
    product fit a 64-bit integer.  Cheap: a few attribute reads per node."""
    budgets = current()
    if count > budgets.max_nodes:
        raise BudgetError(path, "max-nodes", count, budgets.max_nodes,
                          f"the model expands to more than {budgets.max_nodes:,} layers")
    attrs = node.attrs or {}
    where = f"layer {node.layer or node.name!r}"
    for key in _KERNEL_ATTRS:
        for size in _ints(attrs.get(key)):
            check_int64(path, size, f"{where}: {key}")
            check(path, "max-kernel-size", size, f"{where} has a {key} of {size:,}")
    for key in _WIDTH_ATTRS:
        for size in _ints(attrs.get(key)):
            check_int64(path, size, f"{where}: {key}")
            check(path, "max-channels", size, f"{where} has {size:,} {key}")
    for shape in (node.output_shape, *(node.input_shapes or ())):
        dims = _ints(shape)
        if dims and sum(abs(d).bit_length() for d in dims) >= 63:
            elements = 1
            for d in dims:
                check_int64(path, d, f"{where}: a dimension")
                elements *= d
            check_int64(path, elements, f"{where}: its tensor's element count")
    if isinstance(node.params, int):
        check_int64(path, node.params, f"{where}: its parameter count")
    for group in _WEIGHT_PRODUCTS:
        factors = [d for key in group for d in _ints(attrs.get(key))]
        if len(factors) > len(group) - 1 and \
                sum(abs(d).bit_length() for d in factors) >= 63:
            product = 1
            for d in factors:
                product *= d
            check_int64(path, product, f"{where}: its weight count")
