"""Public, serialisable Keras 3 blocks for efficient CNNs (``keras.ops`` only)."""
from keras_cnnkit.layers.activations import ReLU6
from keras_cnnkit.layers.base import SpecBlock, emit
from keras_cnnkit.layers.conv import ConvBNAct, DilatedConv
from keras_cnnkit.layers.deformable import DeformableConv2D, deform_conv2d
from keras_cnnkit.layers.dense import DenseBlock, TransitionBlock
from keras_cnnkit.layers.factorized import Bottleneck1x1, FactorizedConv
from keras_cnnkit.layers.group_conv import GroupConv
from keras_cnnkit.layers.heads import ClassifierHead
from keras_cnnkit.layers.inception import InceptionModule
from keras_cnnkit.layers.mobile import DepthwiseSeparableConv, InvertedResidual
from keras_cnnkit.layers.regularization import DropPath
from keras_cnnkit.layers.residual import ResidualBlock
from keras_cnnkit.layers.shuffle import ChannelShuffle, ChannelSlice, ShuffleUnit
from keras_cnnkit.layers.squeeze_excite import SqueezeExcite

__all__ = [
    "Bottleneck1x1",
    "ChannelShuffle",
    "ChannelSlice",
    "ClassifierHead",
    "ConvBNAct",
    "DeformableConv2D",
    "DenseBlock",
    "DepthwiseSeparableConv",
    "DilatedConv",
    "DropPath",
    "FactorizedConv",
    "GroupConv",
    "InceptionModule",
    "InvertedResidual",
    "ReLU6",
    "ResidualBlock",
    "ShuffleUnit",
    "SpecBlock",
    "SqueezeExcite",
    "TransitionBlock",
    "deform_conv2d",
    "emit",
]
