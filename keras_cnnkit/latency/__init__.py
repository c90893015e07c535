"""``keras_cnnkit.latency``: predicted time of IR nodes and fragments on a device profile.

FLOPs are far from time: on an H100 a depthwise-separable fix runs at a time ratio near
1.0 for a FLOP ratio of 0.12, and on a CPU 2.6× slower.  This package predicts time from
the cost model's FLOPs and bytes with a per-class roofline, a per-kernel launch term and
fusion of element-wise ops (:mod:`keras_cnnkit.latency.model`), on a named device profile
fitted to measurements (:mod:`keras_cnnkit.latency.profile`, :mod:`~.fit`), packaged or
calibrated on the local machine (:func:`keras_cnnkit.bench.calibration.calibrate`, which
measures, and so sits with the benchmark harness above this package).

* :func:`predict_node` / :func:`predict_nodes` / :func:`predict_graph`: one node, a
  fragment, a whole model;
* :func:`predict_speedup` / :func:`predict_replacement`: a before/after comparison (a
  lint fix), carrying the profile's name and its held-out error figures;
* :func:`load_profile` / :func:`list_profiles` / :func:`resolve_profile`: profiles by
  name (the default is the calibrated local profile, else ``cpu-generic``);
* :func:`fit_profile` / :func:`evaluate`: fit a profile, and its error figures;

Prediction imports neither Keras nor TensorFlow; fitting needs scipy.
"""
from keras_cnnkit.latency.classes import LATENCY_CLASSES, op_class
from keras_cnnkit.latency.data import Case, Observation
from keras_cnnkit.latency.fit import evaluate, fit_profile
from keras_cnnkit.latency.model import (FragmentTime, NodeTime, Speedup, predict_graph,
                                        predict_node, predict_nodes, predict_replacement,
                                        predict_speedup)
from keras_cnnkit.latency.profile import (ClassParams, Profile, ProfileError, cache_dir,
                                          list_profiles, load_profile, resolve_profile)


__all__ = [
    "LATENCY_CLASSES", "Case", "ClassParams", "FragmentTime", "NodeTime", "Observation",
    "Profile", "ProfileError", "Speedup", "cache_dir", "evaluate",
    "fit_profile", "list_profiles", "load_profile", "op_class", "predict_graph",
    "predict_node", "predict_nodes", "predict_replacement", "predict_speedup",
    "resolve_profile",
]
