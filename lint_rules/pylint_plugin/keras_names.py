"""What a piece of source names: Keras symbols behind import aliases, literal argument values.

Keras objects are recognised syntactically, by following import statements and simple
assignments (``from keras import layers``, ``import tensorflow as tf``,
``Conv = layers.Conv2D``) — never by importing Keras, so the plugin works without Keras
installed and stays fast.  Argument values (kernel sizes, filters, flags) go through
astroid inference, so module constants and arithmetic on them resolve.
"""
from __future__ import annotations

from typing import Optional

from astroid import nodes
from pylint.checkers.utils import safe_infer

#: Module paths under which Keras is importable; ``keras.src`` is covered by ``keras``.
KERAS_ROOTS = ("keras", "tensorflow.keras", "tensorflow.python.keras", "tf_keras")

_MAX_DEPTH = 8


def qualified_name(expr: nodes.NodeNG, depth: int = 0) -> Optional[str]:
    """The dotted name ``expr`` denotes with import aliases expanded, or ``None``.

    ``layers.Conv2D`` after ``from keras import layers`` gives ``"keras.layers.Conv2D"``;
    ``tf.keras.Input`` after ``import tensorflow as tf`` gives ``"tensorflow.keras.Input"``.
    """
    if depth > _MAX_DEPTH:
        return None
    if isinstance(expr, nodes.Attribute):
        base = qualified_name(expr.expr, depth + 1)
        return f"{base}.{expr.attrname}" if base else None
    if isinstance(expr, nodes.Name):
        return _binding_name(expr, depth)
    return None


def _binding_name(name: nodes.Name, depth: int) -> Optional[str]:
    """The dotted name bound to ``name`` by the imports or assignments that reach it.

    Several reaching bindings (``try: from tensorflow import keras`` / ``except
    ImportError: import keras``) resolve when they agree below their Keras roots.
    """
    _, statements = name.lookup(name.name)
    candidates = {_statement_binding(statement, name.name, depth) for statement in statements}
    if len(candidates) == 1:
        return candidates.pop()
    if None in candidates or not candidates:
        return None
    relative = {_below_keras_root(candidate) for candidate in candidates}
    if len(relative) == 1 and None not in relative:
        return min(candidates)
    return None


def _statement_binding(statement: nodes.NodeNG, name: str, depth: int) -> Optional[str]:
    """The dotted name one import or assignment statement binds to ``name``."""
    if isinstance(statement, nodes.Import):
        for module, alias in statement.names:
            if alias == name:
                return module
            if alias is None and module.split(".")[0] == name:
                return name
    elif isinstance(statement, nodes.ImportFrom) and not statement.level:
        for imported, alias in statement.names:
            if (alias or imported) == name:
                return f"{statement.modname}.{imported}"
    elif isinstance(statement, nodes.AssignName):
        value = assigned_value(statement)
        if value is not None:
            return qualified_name(value, depth + 1)
    return None


def _below_keras_root(name: str) -> Optional[str]:
    """``"tensorflow.keras.layers"`` → ``"layers"``; ``"keras"`` → ``""``; non-Keras → None."""
    for root in sorted(KERAS_ROOTS, key=len, reverse=True):
        if name == root:
            return ""
        if name.startswith(root + "."):
            return name[len(root) + 1:]
    return None


def assigned_value(target: nodes.AssignName) -> Optional[nodes.NodeNG]:
    """The right-hand side of ``target = value`` (single plain target), else ``None``."""
    statement = target.parent
    if isinstance(statement, nodes.Assign) and statement.targets == [target]:
        return statement.value
    if isinstance(statement, nodes.AnnAssign) and statement.target is target:
        return statement.value
    return None


def reaching_value(name: nodes.Name) -> Optional[nodes.NodeNG]:
    """The value last assigned to ``name`` before its use, when exactly one assignment reaches.

    Parameters, loop targets, imports and names assigned on several branches give ``None``.
    """
    _, statements = name.lookup(name.name)
    if len(statements) == 1 and isinstance(statements[0], nodes.AssignName):
        return assigned_value(statements[0])
    return None


def keras_symbol(expr: nodes.NodeNG) -> Optional[str]:
    """The Keras object ``expr`` names, as its bare name (``"Conv2D"``), else ``None``.

    Any path below a Keras root counts (``keras.layers.Conv2D``,
    ``tensorflow.keras.layers.Conv2D``, ``keras.src.layers.convolutional.conv2d.Conv2D``).
    """
    name = qualified_name(expr)
    relative = _below_keras_root(name) if name else None
    return relative.rsplit(".", 1)[-1] if relative else None


def call_argument(call: nodes.Call, keyword: str,
                  position: Optional[int] = None) -> Optional[nodes.NodeNG]:
    """The expression passed for parameter ``keyword`` (by keyword or at ``position``).

    ``None`` when the argument is absent, or when a ``*args`` before it hides its position.
    """
    for item in call.keywords or ():
        if item.arg == keyword:
            return item.value
    if position is None or position >= len(call.args):
        return None
    if any(isinstance(arg, nodes.Starred) for arg in call.args[:position + 1]):
        return None
    return call.args[position]


def infer_constant(expr: Optional[nodes.NodeNG]) -> tuple[bool, object]:
    """``(True, value)`` when ``expr`` infers to exactly one constant, else ``(False, None)``."""
    if expr is None:
        return False, None
    inferred = safe_infer(expr)
    if isinstance(inferred, nodes.Const):
        return True, inferred.value
    return False, None


def infer_int(expr: Optional[nodes.NodeNG]) -> Optional[int]:
    """The integer ``expr`` infers to (booleans excluded), else ``None``."""
    known, value = infer_constant(expr)
    if known and isinstance(value, int) and not isinstance(value, bool):
        return value
    return None


def infer_dims(expr: Optional[nodes.NodeNG]) -> Optional[tuple[Optional[int], ...]]:
    """A tuple of dimensions from an int, or from a tuple/list of ints and ``None`` entries.

    ``5`` gives ``(5,)``, ``(None, None, 3)`` gives ``(None, None, 3)``; anything that
    does not resolve entry by entry gives ``None``.
    """
    if expr is None:
        return None
    inferred = safe_infer(expr)
    if isinstance(inferred, nodes.Const):
        value = inferred.value
        if isinstance(value, int) and not isinstance(value, bool):
            return (value,)
        return None
    if not isinstance(inferred, (nodes.Tuple, nodes.List)):
        return None
    dims: list[Optional[int]] = []
    for element in inferred.elts:
        known, value = infer_constant(element)
        if not known or isinstance(value, bool) or not isinstance(value, (int, type(None))):
            return None
        dims.append(value)
    return tuple(dims)
