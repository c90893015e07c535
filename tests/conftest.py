"""Shared test fixtures and helpers (kept small)."""
import os

import tempfile  # noqa: E402  pylint: disable=wrong-import-position

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# A profile calibrated on this machine (``cnnkit-lint --calibrate``) would become the
# default device profile and change which alternative each finding recommends: the
# tests use an empty cache directory of their own, so the default is cpu-generic.
os.environ["KERAS_CNNKIT_CACHE_DIR"] = tempfile.mkdtemp(prefix="cnnkit-test-cache-")

import pytest  # noqa: E402  pylint: disable=wrong-import-position


def channels_first_runs() -> bool:
    """Whether channels_first convolutions execute here.

    TensorFlow's CPU kernels only run NHWC convolutions, so channels_first blocks are
    checked by shapes and parameter counts alone on a TF backend without a GPU.
    """
    import keras

    if keras.backend.backend() != "tensorflow":
        return True
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _full_float32_precision() -> None:
    """Compute float32 convolutions and matmuls in full float32 precision.

    The tests compare blocks against float32 references to about 1e-5.  On a GPU with
    tensor cores (Ampere and later) the backends run float32 convs in TF32 by default
    (cuDNN in PyTorch and TensorFlow, XLA in JAX), whose ~1e-3 relative error would fail
    those checks without anything being wrong.  ``NVIDIA_TF32_OVERRIDE=0`` turns TF32 off
    in NVIDIA's libraries (cuBLAS, cuDNN) for every backend without importing any; JAX's
    and PyTorch's own switches are set too where that backend runs the tests (their
    imports are cheap next to TensorFlow's, and the tests import them anyway).  The
    benchmarks keep the defaults.
    """
    os.environ.setdefault("NVIDIA_TF32_OVERRIDE", "0")
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    try:
        if backend == "jax":
            import jax  # pylint: disable=import-error

            jax.config.update("jax_default_matmul_precision", "highest")
        elif backend == "torch":
            import torch  # pylint: disable=import-error

            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False
    except ImportError:  # the backend is not installed here
        pass


_full_float32_precision()


@pytest.fixture
def rng():
    """A seeded numpy random generator."""
    import numpy as np

    return np.random.default_rng(0)


# --- Test modules whose imports are missing in this environment -------------------------
# The tox matrix runs the suite in environments without TensorFlow (the jax, torch and
# notf envs).  A test module that imports a package at its top that is not installed is
# left out of collection, and the header says which modules and why.
import ast  # noqa: E402  pylint: disable=wrong-import-position
import importlib.util  # noqa: E402  pylint: disable=wrong-import-position

_HERE = os.path.dirname(os.path.abspath(__file__))
_LOCAL = {name[:-3] for name in os.listdir(_HERE) if name.endswith(".py")}


#: Package modules that import Keras (and so need its backend installed).
_KERAS_MODULES = ("keras", "keras_cnnkit.layers", "keras_cnnkit.models", "keras_cnnkit.rewrite",
                  "keras_cnnkit.bench", "keras_cnnkit.export", "keras_cnnkit.lint.fix",
                  "keras_cnnkit.analysis.frontends.keras_live")


def _top_level_imports(path: str) -> set:
    """Modules imported at the top of ``path`` (``from a import b`` gives ``a`` and ``a.b``)."""
    with open(path, encoding="utf-8") as fh:
        tree = ast.parse(fh.read(), path)
    names = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _missing_requirements(path: str) -> list:
    """What ``path`` imports at its top that this environment cannot import."""
    imports = _top_level_imports(path)
    tops = {name.split(".")[0] for name in imports} - _LOCAL - {"keras_cnnkit", "lint_rules"}
    missing = sorted(n for n in tops if importlib.util.find_spec(n) is None)
    needs_keras = any(name == mod or name.startswith(mod + ".")
                      for name in imports for mod in _KERAS_MODULES)
    if needs_keras and "keras" not in missing and not _keras_importable():
        missing.append("keras backend")
    return missing


def _keras_importable() -> bool:
    """Keras imports only when its backend package is installed."""
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    return importlib.util.find_spec("keras") is not None and \
        importlib.util.find_spec(backend) is not None


_SKIPPED = {}
for _name in sorted(os.listdir(_HERE)):
    if _name.startswith("test_") and _name.endswith(".py"):
        _missing = _missing_requirements(os.path.join(_HERE, _name))
        if _missing:
            _SKIPPED[_name] = _missing

collect_ignore = sorted(_SKIPPED)


def pytest_report_header(config):  # pylint: disable=unused-argument
    """Name the test modules left out for missing packages."""
    if not _SKIPPED:
        return None
    return ["left out (packages missing here): " + "; ".join(
        f"{name} ({', '.join(missing)})" for name, missing in _SKIPPED.items())]


def _freeze_survivors() -> None:
    """Collect, then move every surviving object out of the garbage collector's view.

    A full collection walks every tracked object: 0.5-1 s a time on the 2-core CI
    machine once TensorFlow, Keras and ONNX are imported (some 460,000 objects), and
    more as earlier tests leave traced graphs behind (TensorFlow keeps a model's
    ``one_step_on_data`` graphs after the model is gone).  ``fresh_keras_session``
    collects twice per test and each automatic generation-2 collection walks them all
    again.  Frozen, they are skipped; everything made later (the tests' models
    included) is collected as before.  Only what survives a full collection is frozen,
    at points where it lives on: after collection (imported modules) and after each
    test module, once its module-scoped fixtures are gone.  (Should a frozen object be
    dropped later, reference counting still frees it; only a reference cycle among
    frozen objects would stay until the process ends.)
    """
    import gc

    gc.collect()
    gc.freeze()


#: The processes that selected test modules started at the end of collection.
_STARTED_EARLY = []


def pytest_collection_finish(session):
    """Freeze what collection imported (see ``_freeze_survivors``); then each selected
    test module that defines ``start_early()`` starts its long subprocess, to run on
    the machine's other core while the tests before it run (``test_code_quality.py``:
    pylint)."""
    _freeze_survivors()
    modules = dict.fromkeys(getattr(item, "module", None) for item in session.items)
    for module in modules:
        start = getattr(module, "start_early", None)
        if start is not None:
            _STARTED_EARLY.append(start())


def pytest_sessionfinish(session, exitstatus):  # pylint: disable=unused-argument
    """Stop what was started early and still runs (a run cut short by -x or Ctrl-C)."""
    for proc in _STARTED_EARLY:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    """After a test module's last test and its module-scoped fixtures' teardown, freeze
    what survives (see ``_freeze_survivors``)."""
    yield
    if nextitem is None or nextitem.path != item.path:
        _freeze_survivors()


@pytest.fixture
def fresh_keras_session():
    """Free a test's models and traced functions afterwards (for modules that build many
    big models: without it the slow builder set grew past 20 GB in one process)."""
    yield
    import gc

    import keras

    keras.backend.clear_session()
    gc.collect()
