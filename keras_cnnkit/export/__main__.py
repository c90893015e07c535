"""``python -m keras_cnnkit.export``: the ``cnnkit-export`` command."""
import sys

from keras_cnnkit.export import main

sys.exit(main())
