"""Shared test set-up: quiet TensorFlow, no wandb, small real audio made in the test."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["TFAUDIO_TESTING"] = "1"
os.environ["WANDB_MODE"] = "disabled"
# XLA's CPU backend without LLVM's optimisation passes: the tests check that every step
# compiles and what it computes, not how fast the compiled code runs (compiles ~25% faster).
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")

import gin  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfaudio.compose  # noqa: E402,F401  (registers every configurable)

# No Grappler graph rewrites in the test processes: they run at each traced function's first
# call, and the tests trace far more than they step (the 15 tiny runs: 182 -> 165 s, measured
# side by side). Subprocesses (the commands users run) keep them.
tf.config.optimizer.set_experimental_options({"disable_meta_optimizer": True})


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    """Shipped gin files trained at tiny sizes, once per session (tests/tiny_runs.py); under
    pytest-xdist the workers share them through their common temporary folder."""
    from tiny_runs import TinyRuns

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    root = root / "tiny_runs"
    root.mkdir(exist_ok=True)
    return TinyRuns(root)


@pytest.fixture(autouse=True)
def _clear_gin():
    gin.clear_config()
    yield
    gin.clear_config()


# The slowest test files first (test seconds summed per file, `pytest --durations=0`, on
# 2026-12-07): `make test` has pytest-xdist hand whole files to its workers in collection
# order (`--dist loadfile --no-loadscope-reorder`; by default it starts with the files of
# most tests), so the files left for the end are short ones and no worker idles long
# while the others finish.
SLOWEST_FILES_FIRST = ["test_benchmarks.py", "test_checkpoints.py", "test_xla.py", "test_preemption.py",
                       "test_classifier.py", "test_studies.py", "test_tacotron.py", "test_export.py",
                       "test_trainer.py", "test_precision.py", "test_openunmix.py", "test_ctc.py"]


def pytest_collection_modifyitems(items):
    def rank(item):
        name = os.path.basename(str(item.path))
        return SLOWEST_FILES_FIRST.index(name) if name in SLOWEST_FILES_FIRST else len(SLOWEST_FILES_FIRST)
    items.sort(key=rank)  # stable: a file's tests keep their order
