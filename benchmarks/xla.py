"""The accelerator contract on this CPU: every family's shipped recipe trained by the user's
command with and without XLA (`StepOptions.jit_compile`, what a TPU compiles every step
with), at the recipe's sizes on the prepared corpora (`python -m tfaudio.prepare asterisk
mixtures langid`):

    python benchmarks/xla.py [--families tacotron_8khz,audio_unet] [--steps 30] [--smoke]

Prints, per family: seconds of the first loop beyond a steady one (tracing plus, with XLA,
compilation), steps/s with and without XLA after it, and the number of times XLA compiled
the train step over the run (from XLA's own dump of every module it compiles) beside the
duration buckets of the recipe, with static shapes on (AudioData.static_shapes, a TPU's
default). `--smoke` runs two steps of the waveform U-Net (or of --families) at tiny sizes,
for CI.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import gin  # noqa: E402

from tfaudio import compose as _registers_configurables  # noqa: E402,F401
from tfaudio import config  # noqa: E402

FAMILIES = {  # family: (gin file, extra bindings at the recipe's sizes)
    "tacotron_8khz": ("gin/tacotron_8khz.gin", []),
    "tacotron_8khz_attention": ("gin/tacotron_8khz_attention.gin", []),
    "audio_unet": ("gin/audio_unet.gin", []),
    "hybrid_unet": ("gin/hybrid_unet.gin", []),
    "openunmix_8khz": ("gin/openunmix_8khz.gin", []),
    "ctc_dilated_small": ("gin/ctc_dilated_small.gin", ["data_dir = 'data/asterisk'"]),
    "classifier_langid": ("gin/classifier_langid.gin", []),
}
TINY = "gin/common/tiny.gin"


def train(gin_files: list, params: list, steps: int, xla: bool, folder: str) -> tuple[list, int]:
    """(training rows of metrics.jsonl, XLA compilations of the train step) of one run."""
    run, dump = os.path.join(folder, f"run_{xla}"), os.path.join(folder, f"dump_{xla}")
    params = params + [f"train_steps = {steps}", f"eval_every = {10 * steps}", "Trainer.steps_per_loop = 1",
                       "CheckpointConfig.every = 100000", f"StepOptions.jit_compile = {xla}",
                       f"AudioData.static_shapes = {xla}"]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", XLA_FLAGS=f"--xla_dump_to={dump}")
    command = [sys.executable, "-m", "tfaudio.train", f"--model_dir={run}", "--tracker=none"] + \
        [f"--gin_file={f}" for f in gin_files] + [f"--gin_param={p}" for p in params]
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(f"{gin_files} (xla={xla}) failed:\n{done.stderr[-3000:]}")
    with open(os.path.join(run, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f]
    modules = {name.split(".")[0] for name in os.listdir(dump) if "replica_grads" in name} if xla else set()
    return [r for r in rows if "loss" in r and "split" not in r and "event" not in r], len(modules)


def rates(rows: list) -> tuple[float, float]:
    """(first loop's extra seconds, steady steps/s over the later half of the loops)."""
    later = rows[len(rows) // 2:]
    steady = sum(r["loop_steps"] for r in later) / sum(r["loop_steps"] / r["steps_per_sec"] for r in later)
    first = rows[0]["loop_steps"] / rows[0]["steps_per_sec"] - rows[0]["loop_steps"] / steady
    return first, steady


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--families", default=None, help="default: all (--smoke: audio_unet)")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--smoke", action="store_true", help="two steps on tiny sizes (for CI)")
    args = parser.parse_args()
    steps = 2 if args.smoke else args.steps
    print("family | first loop s (plain / XLA) | steps/s plain | steps/s XLA | XLA/plain | compilations | buckets")
    families = args.families or ("audio_unet" if args.smoke else ",".join(FAMILIES))
    for family in families.split(","):
        gin_file, params = FAMILIES[family]
        if args.smoke and family.startswith("tacotron"):
            params = params + ["vocabulary.kind = 'characters'"]  # no espeak-ng needed
        gin_files = [gin_file] + ([TINY] if args.smoke else [])
        buckets = len(_bucket_boundaries(gin_file)) + 1
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            plain, _ = train(gin_files, params, steps, False, folder)
            compiled, compilations = train(gin_files, params, steps, True, folder)
        (first_plain, plain_rate), (first_xla, xla_rate) = rates(plain), rates(compiled)
        print(f"{family} | {first_plain:.1f} / {first_xla:.1f} | {plain_rate:.2f} | {xla_rate:.2f} | "
              f"{xla_rate / plain_rate:.2f} | {compilations} in {steps} steps | {buckets}  "
              f"({time.perf_counter() - start:.0f} s)", flush=True)


def _bucket_boundaries(gin_file: str) -> tuple:
    """The recipe's AudioData.bucket_boundaries (none for fixed-length recipes)."""
    config.parse([gin_file], [], finalize=False)
    try:
        return tuple(gin.query_parameter("AudioData.bucket_boundaries"))
    except ValueError:
        return ()
    finally:
        gin.clear_config()


if __name__ == "__main__":
    main()
