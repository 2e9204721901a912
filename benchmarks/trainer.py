"""Where training time goes, for a real model (default: gin/audio_unet.gin on data/mixtures):

    python benchmarks/trainer.py [--gin_file gin/audio_unet.gin] [--batch_size 8] [--steps 100] [--smoke]

Prints examples/s of the eager vs traced step, steps_per_loop 1 vs 50, accumulate_n 8 at
batch B vs one batch of 8B, and the input pipeline alone vs what the model consumes, with
the ratios. Each measurement is a real Trainer run in a temporary run directory; the
first loop (tracing) is left out.
"""

import argparse
import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


from tfaudio import compose as training  # noqa: E402
from tfaudio import config  # noqa: E402
from tfaudio.run_dir import read_metrics  # noqa: E402
from tfaudio.training.trainer import Trainer  # noqa: E402


def trainer_rate(gin_files, params, eager=False) -> tuple[float, Trainer]:
    """Examples/s of a short run (loops after the first)."""
    config.parse(gin_files, params + ["Trainer.eval_every = 100000", "CheckpointConfig.every = 100000",
                                       "StepOptions.ema_decay = None", f"StepOptions.traced = {not eager}"],
                 finalize=False)
    with tempfile.TemporaryDirectory() as run:
        trainer, _ = training.train(run, tracker="none")
        rows = [r for r in read_metrics(run) if "split" not in r and "event" not in r][1:]
    return sum(r["examples_per_sec"] for r in rows) / max(len(rows), 1), trainer


def pipeline_rate(trainer, batches: int) -> float:
    replica_step_batch = trainer.batches.replica_step_batch
    dataset = trainer.data.train(replica_step_batch, 1)
    iterator = iter(dataset)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * replica_step_batch / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gin_file", default="gin/audio_unet.gin")
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, a few steps (for CI)")
    args = parser.parse_args()
    if args.smoke:
        args.batch_size, args.steps = 2, 10
    gin_files = [args.gin_file] + (["gin/common/tiny.gin"] if args.smoke else [])
    b, n = args.batch_size, args.steps
    loops, per = (2, 1) if args.smoke else (50, 5)  # steps per loop: the large one, the others
    base = [f"batch_size = {b}", "accumulate_n = 1"]

    def show(name, a, b_):
        print(f"{name}: {a[0]} {a[1]:.1f} ex/s vs {b_[0]} {b_[1]:.1f} ex/s (ratio {a[1] / b_[1]:.2f})", flush=True)

    eager, _ = trainer_rate(gin_files, base + [f"train_steps = {n // 5}", f"Trainer.steps_per_loop = {per}"], True)
    traced, trainer = trainer_rate(gin_files, base + [f"train_steps = {n}", f"Trainer.steps_per_loop = {5 * per}"])
    show("traced vs eager step", ("traced", traced), ("eager", eager))
    loop1, _ = trainer_rate(gin_files, base + [f"train_steps = {n}", "Trainer.steps_per_loop = 1"])
    loop50, _ = trainer_rate(gin_files, base + [f"train_steps = {3 * loops}", f"Trainer.steps_per_loop = {loops}"])
    show(f"steps_per_loop {loops} vs 1", (str(loops), loop50), ("1", loop1))
    accum, _ = trainer_rate(gin_files, [f"batch_size = {b}", "accumulate_n = 8", f"train_steps = {n // 4}",
                                            f"Trainer.steps_per_loop = {per}"])
    big, _ = trainer_rate(gin_files, [f"batch_size = {8 * b}", "accumulate_n = 1", f"train_steps = {n // 4}",
                                          f"Trainer.steps_per_loop = {per}"])
    show(f"accumulate_n 8 at batch {b} vs batch {8 * b}", ("accumulate", accum), ("large batch", big))
    show("input pipeline alone vs model consumption", ("pipeline", pipeline_rate(trainer, loops)), ("model", traced))


if __name__ == "__main__":
    main()
