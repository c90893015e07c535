"""Train cases on one CPU and under ``tf.distribute.MirroredStrategy`` over two logical
CPUs; print the comparison as JSON.

Run by ``test_distribution_tf.py`` in a fresh process: TensorFlow's logical devices can
only be configured before it initialises, and one process keeps one strategy (a second
``MirroredStrategy`` in the same process mixes up its collectives with the first's).

Usage: ``python tests/mirrored_training.py CASE[:unsynced] ...``.  Each case's batch
norms are synchronised with :func:`keras_cnnkit.models.synchronize_batch_norm` unless
``:unsynced`` is given.
"""
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ["KERAS_BACKEND"] = "tensorflow"

REPLICAS = 2


def main(specs: list) -> dict:
    """``{spec: comparison}``: losses, update error, variable and BN facts."""
    import tensorflow as tf  # pylint: disable=import-outside-toplevel

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * REPLICAS)
    strategy = tf.distribute.MirroredStrategy([f"CPU:{i}" for i in range(REPLICAS)])

    import distribution_cases as dc  # pylint: disable=import-outside-toplevel
    from keras_cnnkit import models  # pylint: disable=import-outside-toplevel

    out = {}
    for spec in specs:
        case, _, mode = spec.partition(":")
        synchronized = []
        prepare = None
        if mode != "unsynced":
            def prepare(model):
                synchronized.append(models.synchronize_batch_norm(model))
        result = dc.compare(case, strategy.scope, prepare=prepare)
        model = result.pop("model")
        result["synchronized"] = synchronized[0] if synchronized else 0
        result["mirrored"] = all(isinstance(v.value, tf.distribute.DistributedValues)
                                 for v in model.variables)
        out[spec] = result
    return out


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    print(json.dumps(main(sys.argv[1:])))
