"""``python -m keras_cnnkit``: the ``cnnkit-lint`` command line."""
import sys

from keras_cnnkit.lint.cli import main

if __name__ == "__main__":
    sys.exit(main())
