"""Rewrite: graph-IR fragments back into Keras layers, and replacements applied to models.

Shared by ``cnnkit-lint --fix`` (:mod:`keras_cnnkit.lint.fix`) and the benchmark
harness (:mod:`keras_cnnkit.bench`).

* :func:`keras_layers_for` / :func:`node_layers`: IR nodes → stock Keras layers.
* :func:`replacement_models`, :func:`model_from_graph`: Keras models built from IR
  alone (random weights), never from a model file's code.
* :func:`apply_findings` / :func:`rewrite_model`: a live model rebuilt with the findings'
  replacements, weights of untouched layers copied, function-preserving fixes exact.
* :func:`fold_batchnorm`: the opt-in inference transform folding BN into convs.
"""
import importlib

_EXPORTS = {
    "UnsupportedNodeError": "codegen", "keras_layers_for": "codegen",
    "node_layers": "codegen", "supported_ops": "codegen",
    "model_from_graph": "build", "model_from_nodes": "build",
    "replacement_models": "build", "unbuildable_nodes": "build",
    "apply_findings": "apply", "rewrite_model": "apply", "fold_batchnorm": "apply",
    "RewriteError": "apply", "RewriteResult": "apply", "Substitution": "apply",
    "select_findings": "plan", "apply_to_graph": "plan", "Skipped": "plan",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    """Import the submodule defining ``name`` on first use (keeps Keras out until needed)."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
