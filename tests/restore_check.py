"""Restores runs in a process of their own and compares each with what its training
process saved: python tests/restore_check.py REPORT.json RUN_DIR EXPECTED.npz [RUN_DIR EXPECTED.npz ...]
EXPECTED holds "raw/<name>" (and "ema/<name>") for every model variable, "batch/<key>"
and "loss" (the per-example loss of that batch, training=False). REPORT gets
{run directory: [one line per mismatch]}; exits 1 when there is any."""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfaudio import registry  # noqa: E402,F401
from tfaudio.experiment import load_checkpoint, restore_for_inference  # noqa: E402
from tfaudio.models.weights import named_variables  # noqa: E402
from tfaudio.run_dir import latest_checkpoint  # noqa: E402


def compare(model, expected, prefix) -> list[str]:
    """The mismatches between the model's variables and the training process's `prefix/`
    ("raw" or "ema") arrays."""
    named = named_variables(model)
    errors = [f"{prefix} {n}: missing from the restored model" for n in
              {k[len(prefix) + 1:] for k in expected if k.startswith(prefix + "/")} - set(named)]
    for name, variable in named.items():
        key = f"{prefix}/{name}"
        if key not in expected:
            errors.append(f"{key}: in the restored model but not in the training process")
        elif not np.array_equal(np.asarray(variable.numpy()), expected[key]):
            errors.append(f"{key}: differs from the training process")
    return errors


def check(run_dir, path) -> list[str]:
    """The mismatches between `run_dir` restored and what its training saved in `path`."""
    expected = dict(np.load(path))
    model, task = restore_for_inference(run_dir, use_ema=False)
    errors = compare(model, expected, "raw")
    batch = {k[6:]: tf.constant(v) for k, v in expected.items() if k.startswith("batch/")}
    loss, _ = task.loss(model, batch, training=False)
    if not np.allclose(loss.numpy(), expected["loss"], rtol=1e-6, atol=1e-7):
        errors.append(f"loss {loss.numpy()} differs from the training process's {expected['loss']}")
    if any(k.startswith("ema/") for k in expected):  # the same checkpoint's EMA weights, as inference loads them
        load_checkpoint(model, task, latest_checkpoint(run_dir), use_ema=True)
        errors += compare(model, expected, "ema")
    return errors


def main(report, *pairs):
    results = {}
    for run, path in zip(pairs[::2], pairs[1::2]):
        try:
            results[run] = check(run, path)
        except Exception as exc:  # reported against its run; the others are still checked
            results[run] = [f"restore failed: {exc!r}"]
    with open(report, "w") as f:
        json.dump(results, f, indent=1)
    return 1 if any(results.values()) else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
