"""Early stopping of clearly losing runs by asynchronous successive halving (ASHA, Li et
al., 2020), read from the same metrics.jsonl rows that pick a stage's winner.

Rungs are a run's grace-th, grace x reduction-th, grace x reduction^2-th ... evaluation
of the stage metric. When a run reaches a rung its value there is recorded; if at least
`min_runs` runs have reached that rung and the value is not among the best
1/reduction of them, the run is stopped: it saves at its current step and counts as
finished, stopped early, and never wins its stage.
"""

from __future__ import annotations

import dataclasses
import threading

from tfaudio.run_dir import has_metrics, read_metrics


@dataclasses.dataclass
class ASHA:
    reduction: int = 3
    grace: int = 1
    min_runs: int = 3

    def __post_init__(self):
        if self.reduction < 2 or self.grace < 1 or self.min_runs < 2:
            raise ValueError(f"{self}: needs reduction >= 2, grace >= 1, min_runs >= 2")

    def rungs(self, evaluations: int) -> list[int]:
        """The rungs (evaluation counts) up to `evaluations`."""
        out, rung = [], self.grace
        while rung <= evaluations:
            out.append(rung)
            rung *= self.reduction
        return out


class Halving:
    """The rung records of one stage; `judge` says at which rung a run is stopped, if any."""

    def __init__(self, asha: ASHA, mode: str):
        self.asha, self.mode = asha, mode
        self.recorded: dict[int, dict[str, float]] = {}
        self.stopped: dict[str, int] = {}

    def judge(self, run: str, values: list[float]) -> int | None:
        """Records `run`'s values at the rungs it has newly reached; the rung at which it
        falls outside the best 1/reduction, or None."""
        for rung in self.asha.rungs(len(values)):
            at_rung = self.recorded.setdefault(rung, {})
            if run in at_rung:
                continue
            at_rung[run] = values[rung - 1]
            ranked = sorted(at_rung.values(), reverse=self.mode == "max")
            if len(ranked) >= self.asha.min_runs:
                cutoff = ranked[max(1, len(ranked) // self.asha.reduction) - 1]
                if (values[rung - 1] > cutoff) if self.mode == "min" else (values[rung - 1] < cutoff):
                    self.stopped[run] = rung
                    return rung
        return None


def evaluations(run_dir: str, metric: str) -> list[float]:
    """The run's values of `metric` ("split/name"), one per evaluation; [] before any."""
    split, name = metric.split("/", 1)
    if not has_metrics(run_dir):
        return []
    return [r[name] for r in read_metrics(run_dir) if r.get("split") == split and name in r]


class StopLosers:
    """While a stage runs: polls its runs' metrics every `every` seconds and asks the
    losers among `running` to stop (`stop(run_dir, **why)`)."""

    def __init__(self, asha: ASHA, metric: str, mode: str, run_dirs: list[str], running: list[str], stop,
                 every: float = 2.0, log=print):
        self.halving, self.metric, self.stop = Halving(asha, mode), metric, stop
        self.run_dirs, self.running, self.every, self.log = run_dirs, set(running), every, log
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        self._thread.join()

    def _poll(self):
        while not self._done.wait(self.every):
            self.check()

    def check(self):
        for run_dir in self.run_dirs:
            if run_dir in self.halving.stopped:
                continue
            rung = self.halving.judge(run_dir, evaluations(run_dir, self.metric))
            if rung is not None and run_dir in self.running:
                self.stop(run_dir, rung=rung, metric=self.metric, value=self.halving.recorded[rung][run_dir])
                self.log(f"  stopping {run_dir}: outside the best 1/{self.halving.asha.reduction} at evaluation "
                         f"{rung} ({self.metric})")
