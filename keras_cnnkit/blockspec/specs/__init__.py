"""Spec modules, one per block family.  Importing this package registers them all."""
# pylint: disable=unused-import
from keras_cnnkit.blockspec.specs import conv  # noqa: F401
from keras_cnnkit.blockspec.specs import dense  # noqa: F401
from keras_cnnkit.blockspec.specs import factorized  # noqa: F401
from keras_cnnkit.blockspec.specs import heads  # noqa: F401
from keras_cnnkit.blockspec.specs import inception  # noqa: F401
from keras_cnnkit.blockspec.specs import mobile  # noqa: F401
from keras_cnnkit.blockspec.specs import residual  # noqa: F401
from keras_cnnkit.blockspec.specs import shuffle  # noqa: F401
from keras_cnnkit.blockspec.specs import squeeze_excite  # noqa: F401
from keras_cnnkit.blockspec.specs import xception  # noqa: F401
