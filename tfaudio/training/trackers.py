"""Where a run's numbers go: metrics.jsonl (always), TensorBoard, wandb, and progress
(a bar in a terminal, plain lines with an ETA elsewhere).

Every tracker receives the same scalars. wandb never prompts and never needs the
network: offline unless an API key is configured, disabled under tests.
"""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np
import tensorflow as tf
from tqdm import tqdm

from tfaudio.run_dir import METRICS

TRACKERS = ("tensorboard", "wandb", "both", "none")


def under_test() -> bool:
    return "PYTEST_CURRENT_TEST" in os.environ or os.environ.get("TFAUDIO_TESTING") == "1"


class MetricsFile:
    """Appends one JSON object per line to `metrics.jsonl`, flushed per write."""

    def __init__(self, path: str):
        self.path = path
        self._file = open(path, "a", encoding="utf-8")

    def write(self, row: dict):
        clean = {k: _jsonable(v) for k, v in row.items()}
        self._file.write(json.dumps(clean) + "\n")
        self._file.flush()

    def close(self):
        self._file.close()


def _jsonable(value):
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


class TensorBoardTracker:
    def __init__(self, log_dir: str):
        self._writer = tf.summary.create_file_writer(log_dir)

    def scalars(self, step: int, values: dict, prefix: str):
        with self._writer.as_default(step=step):
            for key, value in values.items():
                tf.summary.scalar(f"{prefix}/{key}", value)
        self._writer.flush()

    def image(self, step: int, name: str, rgb: np.ndarray):
        with self._writer.as_default(step=step):
            tf.summary.image(name, rgb[None])

    def audio(self, step: int, name: str, wave: np.ndarray, sample_rate: int):
        with self._writer.as_default(step=step):
            tf.summary.audio(name, np.asarray(wave, np.float32).reshape(1, -1, 1), sample_rate)

    def text(self, step: int, name: str, text: str):
        with self._writer.as_default(step=step):
            tf.summary.text(name, text)

    def close(self):
        self._writer.flush()


class WandbTracker:
    def __init__(self, run_dir: str, name: str, group: str, config: dict):
        if not os.environ.get("WANDB_API_KEY") and not os.environ.get("WANDB_MODE"):
            os.environ["WANDB_MODE"] = "offline"
        os.environ.setdefault("WANDB_SILENT", "true")
        import wandb  # slow import, only when asked for

        self._wandb = wandb
        self._run = wandb.init(project=os.environ.get("WANDB_PROJECT", "tfaudio"), name=name,
                               group=group, dir=run_dir, config=config, reinit="finish_previous",
                               settings=wandb.Settings(console="off"))

    def scalars(self, step: int, values: dict, prefix: str):
        self._run.log({f"{prefix}/{k}": v for k, v in values.items()}, step=step)

    def image(self, step: int, name: str, rgb: np.ndarray):
        self._run.log({name: self._wandb.Image(rgb)}, step=step)

    def audio(self, step: int, name: str, wave: np.ndarray, sample_rate: int):
        self._run.log({name: self._wandb.Audio(np.asarray(wave).reshape(-1), sample_rate=sample_rate)},
                      step=step)

    def text(self, step: int, name: str, text: str):
        self._run.log({name: self._wandb.Html(f"<pre>{text}</pre>")}, step=step)

    def close(self):
        self._run.finish()


class Trackers:
    """Fans every logged row out to metrics.jsonl and the chosen trackers."""

    def __init__(self, run_dir: str, kind: str = "tensorboard", name: str = "", group: str = "",
                 config: dict | None = None):
        if kind not in TRACKERS:
            raise ValueError(f"--tracker={kind}: choose one of {', '.join(TRACKERS)}")
        os.makedirs(run_dir, exist_ok=True)
        self.metrics = MetricsFile(os.path.join(run_dir, METRICS))
        self._sinks = []
        if kind in ("tensorboard", "both"):
            self._sinks.append(TensorBoardTracker(os.path.join(run_dir, "tensorboard")))
        if kind in ("wandb", "both") and not under_test():
            self._sinks.append(WandbTracker(run_dir, name, group, config or {}))

    def log(self, row: dict):
        """One metrics.jsonl row; numeric fields also go to each tracker under
        train/ (training rows), <split>/ (evaluation rows) or guard/ (events)."""
        self.metrics.write(row)
        prefix = row.get("split") or ("guard" if "event" in row else "train")
        numbers = {k: v for k, v in row.items()
                   if k not in ("step", "split", "event") and isinstance(v, (int, float, np.number))}
        for sink in self._sinks:
            sink.scalars(int(row["step"]), numbers, prefix)

    @property
    def wants_media(self) -> bool:
        """True when some tracker shows images and audio (not with --tracker=none)."""
        return bool(self._sinks)

    def image(self, step: int, name: str, rgb: np.ndarray):
        for sink in self._sinks:
            sink.image(step, name, rgb)

    def audio(self, step: int, name: str, wave: np.ndarray, sample_rate: int):
        for sink in self._sinks:
            sink.audio(step, name, wave, sample_rate)

    def text(self, step: int, name: str, text: str):
        for sink in self._sinks:
            sink.text(step, name, text)

    def close(self):
        self.metrics.close()
        for sink in self._sinks:
            sink.close()


class Progress:
    """Training progress: a tqdm bar with an ETA in a terminal, and one plain line every
    `every_s` seconds appended to `log_path` (and printed when there is no terminal), e.g.
    "step 500/2500 (20%) loss 0.8312 1.62 steps/s ETA 20.6 min"."""

    def __init__(self, total: int, initial: int, log_path: str, every_s: float = 30.0):
        self.total, self.step, self.every_s, self.log_path = total, initial, every_s, log_path
        self._bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, disable=None)
        self._start, self._start_step = time.time(), initial
        self._last_line = self._start

    def update(self, step: int, loss: float, steps_per_sec: float):
        self._bar.update(step - self.step)
        self._bar.set_postfix(loss=f"{loss:.4g}", sps=f"{steps_per_sec:.2f}")
        self.step = step
        now = time.time()
        if now - self._last_line >= self.every_s or step == self.total:
            rate = (step - self._start_step) / max(now - self._start, 1e-9)
            eta = (self.total - step) / rate / 60 if rate > 0 else float("inf")
            line = (f"step {step}/{self.total} ({100 * step / self.total:.0f}%) loss {loss:.4f} "
                    f"{rate:.2f} steps/s ETA {eta:.1f} min")
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(time.strftime("%H:%M:%S ") + line + "\n")
            if self._bar.disable:
                print(line, flush=True)
            self._last_line = now

    def restart(self, step: int):
        """After a rollback: the bar and the rate start again from `step`."""
        self._bar.reset(total=self.total)
        self._bar.update(step)
        self.step, self._start, self._start_step = step, time.time(), step

    def close(self):
        self._bar.close()
