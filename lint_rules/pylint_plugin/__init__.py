"""A pylint plugin that finds the model linter's inefficiencies in Keras model source.

Enable it with ``pylint --load-plugins=lint_rules.pylint_plugin`` (or ``load-plugins`` in
the pylint configuration).  It reports at ``file:line``, before any model is built:

========  ==========================  ==================================================
id        symbol                      finds
========  ==========================  ==================================================
R5701     large-kernel                a k×k conv (k ≥ 5) that stacked 3×3 convs make cheaper
R5702     flatten-dense-head          ``Flatten`` followed by ``Dense``
R5703     bias-before-batchnorm       a conv bias cancelled by the next ``BatchNormalization``
W5704     dropout-before-batchnorm    ``Dropout`` directly before ``BatchNormalization``
W5705     unsafe-model-load           ``safe_mode=False`` / ``enable_unsafe_deserialization()``
========  ==========================  ==================================================

The symbols are the model linter's (CNK101, CNK105, CNK108, CNK109) where the check is the
same one.  ``docs/pylint_plugin.md`` describes what is inferred and the limits.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from lint_rules.pylint_plugin.checker import KerasModelChecker

if TYPE_CHECKING:
    from pylint.lint import PyLinter

__all__ = ["KerasModelChecker", "register"]


def register(linter: "PyLinter") -> None:
    """Register the checker with ``linter`` (pylint's plugin entry point)."""
    linter.register_checker(KerasModelChecker(linter))
