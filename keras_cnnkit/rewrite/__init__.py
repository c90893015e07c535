"""Rewrite: graph-IR fragments back into Keras layers, and replacements applied to models.

Shared by ``cnnkit-lint --fix`` (:mod:`keras_cnnkit.lint.fix`) and the benchmark
harness (:mod:`keras_cnnkit.bench`).  Importing it imports Keras.

* :func:`keras_layers_for` / :func:`node_layers`: IR nodes → stock Keras layers.
* :func:`replacement_models`, :func:`model_from_graph`: Keras models built from IR
  alone (random weights), never from a model file's code.
* :func:`apply_findings` / :func:`apply_report` / :func:`rewrite_model`: a live model
  rebuilt with the findings' replacements (a lint report's), weights of untouched layers
  copied, function-preserving fixes exact.
* :func:`fold_batchnorm`: the opt-in inference transform folding BN into convs.
* :func:`reparameterize`: the inference transform merging parallel linear conv/BN
  branches into one conv (RepVGG, MobileOne; the ``mergeable-branches`` fix).
* :func:`select_findings` / :func:`apply_to_graph`: conflict-free choice of fixes, and
  the same replacements applied to the IR (pure Python, :mod:`.plan`).
* :func:`rewrite_with_weights`: the fixes applied with the trained weights carried into
  the new layers (:mod:`.weights`, :mod:`.decompose`), refitted on calibration data
  (:mod:`.refit`), their fidelity measured (:mod:`.fidelity`); :func:`distill`: a short
  knowledge-distillation fine-tune of the fixed model (:mod:`.distillation`).
"""
from keras_cnnkit.rewrite.apply import (RewriteError, RewriteResult, Substitution,
                                        apply_findings, apply_report, apply_substitutions,
                                        fold_batchnorm, rewrite_model)
from keras_cnnkit.rewrite.build import (model_from_graph, model_from_nodes,
                                        replacement_models, unbuildable_nodes)
from keras_cnnkit.rewrite.carry import CarriedRewrite, rewrite_with_weights
from keras_cnnkit.rewrite.codegen import (UnsupportedNodeError, keras_layers_for,
                                          node_layers, supported_ops)
from keras_cnnkit.rewrite.distillation import DistillResult, distill
from keras_cnnkit.rewrite.plan import Skipped, apply_to_graph, select_findings
from keras_cnnkit.rewrite.reparam import reparameterize
from keras_cnnkit.rewrite.weights import WeightPlan, alternatives, plan_weights

__all__ = [
    "CarriedRewrite", "DistillResult", "RewriteError", "RewriteResult", "Skipped",
    "Substitution", "UnsupportedNodeError", "WeightPlan", "alternatives", "apply_findings",
    "apply_report", "apply_substitutions", "apply_to_graph", "distill", "fold_batchnorm",
    "keras_layers_for", "model_from_graph", "model_from_nodes", "node_layers",
    "plan_weights", "replacement_models", "reparameterize", "rewrite_model",
    "rewrite_with_weights", "select_findings", "supported_ops", "unbuildable_nodes",
]
