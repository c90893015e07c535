"""keras.applications-exact builders and more, with a timm-like registry.

Every builder has keras.applications' signature (``include_top, weights, input_tensor,
input_shape, pooling, classes, classifier_activation, name``), its family's own knobs
(``alpha`` for MobileNets) and the common options of
:class:`~keras_cnnkit.models.assembly.Options` (``in_channels``, ``features_only``,
``out_indices``, ``output_stride``, ``width_multiplier``, ``drop_path_rate``,
``dropout``).  ``create_model(name, **kwargs)`` builds a registered model by name.
:func:`propose_layout_map` and :func:`synchronize_batch_norm` help train them on several
devices (:mod:`keras_cnnkit.models.distribution`).
"""
from keras_cnnkit.models.alexnet import build_alexnet
from keras_cnnkit.models.assembly import FeatureInfo, Options
from keras_cnnkit.models.densenet import build_densenet121, build_densenet169, build_densenet201
from keras_cnnkit.models.distribution import (
    LayoutPlan,
    propose_layout_map,
    synchronize_batch_norm,
)
from keras_cnnkit.models.googlenet import build_googlenet
from keras_cnnkit.models.inception_v3 import build_inception_v3
from keras_cnnkit.models.mobilenet import build_mobilenet
from keras_cnnkit.models.mobilenet_v2 import build_mobilenet_v2
from keras_cnnkit.models.resnet import build_resnet50, build_resnet50_v2, build_se_resnet50
from keras_cnnkit.models.shufflenet import build_shufflenet_v2
from keras_cnnkit.models.registry import create_model, list_models, register_model
from keras_cnnkit.models.vgg import build_vgg16
from keras_cnnkit.models.weights import WeightsUnavailableError
from keras_cnnkit.models.xception import build_xception

__all__ = [
    "FeatureInfo",
    "LayoutPlan",
    "Options",
    "WeightsUnavailableError",
    "build_alexnet",
    "build_densenet121",
    "build_densenet169",
    "build_densenet201",
    "build_googlenet",
    "build_inception_v3",
    "build_mobilenet",
    "build_mobilenet_v2",
    "build_resnet50",
    "build_resnet50_v2",
    "build_se_resnet50",
    "build_shufflenet_v2",
    "build_vgg16",
    "build_xception",
    "create_model",
    "list_models",
    "propose_layout_map",
    "register_model",
    "synchronize_batch_norm",
]
