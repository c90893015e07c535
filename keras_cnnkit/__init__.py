"""keras-cnnkit: CNN efficiency blocks, builders and a model linter for Keras 3.

Importing the top-level package is cheap: it imports neither Keras nor
TensorFlow.  ``keras_cnnkit.layers`` and ``keras_cnnkit.models`` import Keras
when first touched; the static linter path (``keras_cnnkit.analysis`` and the
``cnnkit-lint`` command on model files) never does.
"""
import importlib

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
