"""Spec modules, one per block family.  Importing this package registers them all."""
from keras_cnnkit.blockspec.specs import conv  # noqa: F401  pylint: disable=unused-import
