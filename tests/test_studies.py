"""Studies: a sequential spec picks each stage's winner, carries it forward and scales the
learning rate from it; an interrupted study resumes without redoing finished runs; a
failed run is left out; the report holds every run's numbers; the Ray backend runs a
stage of real training runs on a local Ray instance."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from launch import backends
from launch.backends import DONE, LocalBackend, RayBackend, execute
from launch.halving import ASHA, Halving
from launch.run import run_study
from launch.spec import Opt, Stage, Study, binding_value, load, variants_of
from tfaudio import config
from tfaudio.report import write_report
from tfaudio.run_dir import read_metrics
from tfaudio.training import schedules

import audio_files


def planted_cer(bindings: dict) -> float:
    """The metric a run 'reaches': best with padding on, BatchNorm off, batch 16 at the
    square-root-scaled learning rate (lr 2e-3 * sqrt(16 / 8))."""
    cer = 0.5
    cer -= 0.1 if bindings.get("padding") else 0.0
    cer -= 0.1 if bindings.get("batch_norm") is False else 0.0
    cer -= 0.05 * (bindings.get("batch_size") == 16)
    cer += abs(bindings.get("learning_rate", 2e-3) - 2e-3 * 2 ** 0.5) * 10
    return cer


class PlantedBackend:
    """Writes each run's metrics.jsonl from planted_cer instead of training; `fail` names
    variants whose process 'exits 1'; `stop_after` interrupts the study after that many runs."""

    def __init__(self, fail=(), stop_after=None):
        self.submitted, self.fail, self.stop_after = [], set(fail), stop_after

    def run(self, jobs):
        records = []
        for command, run_dir in jobs:
            if self.stop_after is not None and len(self.submitted) == self.stop_after:
                raise KeyboardInterrupt
            self.submitted.append(os.path.basename(run_dir))
            bindings = dict(binding_value(c.split("=", 1)[1]) for c in command if c.startswith("--gin_param="))
            os.makedirs(run_dir, exist_ok=True)
            cer = planted_cer(bindings)
            diverged = bindings.get("padding") is False  # two skipped updates, then a rollback
            rows = [{"step": 0, "event": "model", "parameters": 1234},
                    {"step": 10, "loss": 1.0, "examples_seen": 80, "wall_s": 2.0, "examples_per_sec": 40.0,
                     "effective_batch": 8, "micro_batch": 8, "batch_mode": "accumulate",
                     "skipped_updates": 2 if diverged else 0},
                    *([{"step": 10, "event": "rollback", "to_step": 0}] if diverged else []),
                    {"step": 10, "split": "val", "examples_seen": 80, "cer": cer + 0.2},
                    {"step": 20, "loss": 0.5, "examples_seen": 160, "wall_s": 4.0, "examples_per_sec": 40.0,
                     "effective_batch": 8, "micro_batch": 8, "batch_mode": "accumulate"},
                    {"step": 20, "split": "val", "examples_seen": 160, "cer": cer}]
            with open(os.path.join(run_dir, "metrics.jsonl"), "w") as f:
                f.write("\n".join(json.dumps(r) for r in rows) + "\n")
            code = 1 if any(os.path.basename(run_dir).startswith(v + "_") for v in self.fail) else 0
            record = {"returncode": code, "wall_s": 4.0, "command": command}
            with open(os.path.join(run_dir, DONE), "w") as f:
                json.dump(record, f)
            records.append(record)
        return records


def batch_stage(opt):
    return {f"batch{b}-lr{m:g}x": [f"batch_size = {b}", f"learning_rate = {opt.learning_rate * (b / 8) ** 0.5 * m}"]
            for b in (4, 16) for m in (0.5, 1, 2)}


def study():
    return Study(name="tiny", question="Which settings?", gin_files=["gin/ctc_dilated_small.gin"],
                 bindings=["batch_size = 8"], metric="val/cer", mode="min",
                 stages=[Stage("padding", {"padding-off": ["padding = False"], "padding-on": ["padding = True"]}),
                         Stage("bn", {"bn-on": ["batch_norm = True"], "bn-off": ["batch_norm = False"]}),
                         Stage("batch", batch_stage)])


def test_sequential_stages_pick_winners_and_carry_them_forward(tmp_path):
    backend = PlantedBackend()
    state = run_study(study(), str(tmp_path), backend, log=lambda line: None)
    assert [s["winner"] for s in state["stages"]] == ["padding-on", "bn-off", "batch16-lr1x"]
    # opt.learning_rate came from the gin file (2e-3), scaled by sqrt(16 / 8)
    assert state["stages"][2]["runs"]["batch16-lr1x"]["bindings"][1] == f"learning_rate = {2e-3 * 2 ** 0.5}"
    assert "padding = True" in state["opt"] and "batch_norm = False" in state["opt"]
    # every later run carries the earlier winners
    command = json.loads((tmp_path / "3-batch" / "batch4-lr1x_ctc_dilated_small" / DONE).read_text())["command"]
    assert "--gin_param=padding = True" in command and "--gin_param=batch_norm = False" in command
    assert len(backend.submitted) == 2 + 2 + 6


def test_an_interrupted_study_resumes_without_redoing_finished_runs(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        run_study(study(), str(tmp_path), PlantedBackend(stop_after=3), log=lambda line: None)
    resumed = PlantedBackend()
    state = run_study(study(), str(tmp_path), resumed, log=lambda line: None)
    assert len(resumed.submitted) == 10 - 3 and "padding-off_ctc_dilated_small" not in resumed.submitted
    assert state["stages"][-1]["winner"] == "batch16-lr1x"


class PreemptedBackend(PlantedBackend):
    """Every run 'receives SIGTERM': saved and exits 0, its last event `preempted`."""

    def run(self, jobs):
        records = super().run(jobs)
        for _, run_dir in jobs:
            with open(os.path.join(run_dir, "metrics.jsonl"), "a") as f:
                f.write(json.dumps({"step": 20, "event": "preempted", "signal": "SIGTERM", "saved": True}) + "\n")
        return records


def test_a_stopped_stage_ends_the_study_without_a_winner(tmp_path):
    with pytest.raises(SystemExit, match="stopped by a signal"):
        run_study(study(), str(tmp_path), PreemptedBackend(), log=lambda line: None)
    assert not os.path.exists(tmp_path / "study.json")


def test_a_preempted_run_is_resumed_not_counted(tmp_path):
    run_study(study(), str(tmp_path), PlantedBackend(), log=lambda line: None)
    run_dir = tmp_path / "2-bn" / "bn-off_ctc_dilated_small"
    with open(run_dir / "metrics.jsonl", "a") as f:  # stopped by SIGTERM, saved, exit code 0
        f.write(json.dumps({"step": 20, "event": "preempted", "signal": "SIGTERM", "saved": True}) + "\n")
    again = PlantedBackend()
    run_study(study(), str(tmp_path), again, log=lambda line: None)
    assert again.submitted == ["bn-off_ctc_dilated_small"]


def test_a_resumed_run_records_its_wall_time_over_every_attempt(tmp_path):
    command = [sys.executable, "-c", "import time; time.sleep(0.5)"]
    first = execute(command, str(tmp_path), threads=1)
    again = execute(command, str(tmp_path), threads=1)
    assert (first["attempts"], again["attempts"]) == (1, 2)
    assert again["wall_s"] >= first["wall_s"] + 0.5


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGINT"])
def test_a_killed_or_interrupted_runner_stops_its_run_with_sigterm(tmp_path, signal_name):
    """kill -9 of the process running a training process, or Ctrl-C / a cancelled Ray task
    there (SIGINT; the runner lives on, as a Ray worker does): the training process gets
    SIGTERM (and saves), never orphaned."""
    started, stopped = tmp_path / "started", tmp_path / "stopped"
    child = (f"import signal, sys, time; signal.signal(signal.SIGTERM, lambda *a: (open({str(stopped)!r}, 'w'), "
             f"sys.exit(0))); open({str(started)!r}, 'w'); time.sleep(60)")
    # SIGINT raises KeyboardInterrupt in the runner even where the test itself runs with
    # SIGINT ignored (a background job of a non-interactive shell), as Ray's cancel raises it.
    runner = (f"import signal, sys, time\nsignal.signal(signal.SIGINT, signal.default_int_handler)\n"
              f"from launch.backends import execute\ntry:\n"
              f"    execute([sys.executable, '-c', {child!r}], {str(tmp_path / 'run')!r}, 1)\n"
              f"except KeyboardInterrupt:\n    time.sleep(60)\n")
    study = subprocess.Popen([sys.executable, "-c", runner],
                             cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    deadline = time.time() + 30
    while not started.exists() and time.time() < deadline:
        time.sleep(0.1)
    study.send_signal(getattr(signal, signal_name))
    while not stopped.exists() and time.time() < deadline + 10:
        time.sleep(0.1)
    study.kill()
    study.wait()
    assert started.exists() and stopped.exists()


def test_a_failed_run_is_reported_and_left_out(tmp_path):
    lines = []
    state = run_study(study(), str(tmp_path), PlantedBackend(fail={"padding-on"}), log=lines.append)
    assert state["stages"][0]["winner"] == "padding-off" and state["stages"][0]["runs"]["padding-on"]["failed"]
    assert any("failed (exit 1)" in line and "padding-on" in line for line in lines)


def test_the_report_holds_every_run_and_the_winning_configuration(tmp_path):
    run_study(study(), str(tmp_path), PlantedBackend(), log=lambda line: None)
    report = open(write_report(str(tmp_path))).read()
    for variant in ("padding-off", "padding-on", "bn-on", "bn-off", "batch4-lr0.5x", "batch16-lr2x"):
        assert variant in report
    cer = planted_cer({"padding": True, "batch_norm": False, "batch_size": 4,
                       "learning_rate": 2e-3 * (4 / 8) ** 0.5 * 0.5})
    row = next(line for line in report.splitlines() if line.startswith("| batch4-lr0.5x"))
    assert f"| {cer:.4g} |" in row and "| 160 |" in row and "| 1,234 |" in row  # metric, examples, parameters
    assert "| 8 (accumulate, micro-batch 8) |" in row and row.endswith("| none |")
    assert next(line for line in report.splitlines() if line.startswith("| padding-off")).endswith(
        "| skipped updates 2, rollbacks 1 |")
    assert "## Winning configuration" in report and "padding = True" in report.split("## Winning")[1]
    assert os.path.getsize(tmp_path / "stage3_batch_examples.png") > 1000
    assert os.path.getsize(tmp_path / "stage1_padding_wall.png") > 1000
    moved = tmp_path.parent / (tmp_path.name + "_moved")  # a study folder moved elsewhere reports the same
    shutil.move(tmp_path, moved)
    assert row in open(write_report(str(moved))).read().splitlines()


def test_the_reports_examples_per_second_weights_each_loop_by_its_duration(tmp_path):
    """Examples over seconds, not a mean of per-loop rates (which short loops would inflate);
    the first loop, which traces, left out."""
    from tfaudio.report import run_summary

    rows = [{"step": 1, "loss": 1.0, "examples_seen": 32, "wall_s": 9.0, "loop_steps": 1, "steps_per_sec": 0.1,
             "examples_per_sec": 3.2},
            {"step": 2, "loss": 1.0, "examples_seen": 64, "wall_s": 9.1, "loop_steps": 1, "steps_per_sec": 10.0,
             "examples_per_sec": 320.0},
            {"step": 11, "loss": 1.0, "examples_seen": 352, "wall_s": 18.1, "loop_steps": 9, "steps_per_sec": 1.0,
             "examples_per_sec": 32.0}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    assert run_summary(str(tmp_path), "val/loss", "min")["examples/s"] == pytest.approx(320 / 9.1)


def test_ray_backend_runs_a_stage_of_real_runs(tmp_path, monkeypatch):
    ray = pytest.importorskip("ray", reason="Ray is an optional extra: pip install -e '.[ray]'")
    data = audio_files.class_folders(str(tmp_path / "classes"))
    tiny = Study(name="ray", question="Does dropout matter?", gin_files=["gin/classifier_digits.gin"],
                 bindings=[f"data_dir = '{data}'", "num_classes = 3", "crop_seconds = 0.5", "batch_size = 4",
                           "train_steps = 3", "eval_every = 3", "Classifier.head_units = 8",
                           "ClassificationTask.stats_examples = 8"],
                 metric="val/loss", mode="min",
                 stages=[Stage("dropout", {"dropout-0": ["dropout = 0.0"], "dropout-0.5": ["dropout = 0.5"]})])
    monkeypatch.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        state = run_study(tiny, str(tmp_path / "ray"), RayBackend(num_cpus=2), log=lambda line: None)
    finally:
        ray.shutdown()
    runs = state["stages"][0]["runs"]
    for run in runs.values():
        assert not run["failed"] and os.listdir(os.path.join(run["run_dir"], "checkpoints"))
        assert read_metrics(run["run_dir"])[-1]["step"] == 3
    # The run directories the local backend makes (test_axis_study_and_report_command_lines_run_a_real_axis)
    assert sorted(os.path.basename(r["run_dir"]) for r in runs.values()) == [
        "dropout-0.5_classifier_digits", "dropout-0_classifier_digits"]
    assert "dropout-0.5" in open(write_report(str(tmp_path / "ray"))).read()


PLANTED_RUN = """import json, signal, sys, time
run_dir, value = sys.argv[1], float(sys.argv[2])
def log(row):
    with open(run_dir + "/metrics.jsonl", "a") as f:
        f.write(json.dumps(row) + "\\n")
def preempted(*_):
    log({"step": 0, "event": "preempted", "signal": "SIGTERM", "saved": True})
    sys.exit(0)
signal.signal(signal.SIGTERM, preempted)
for step in range(1, 9):
    time.sleep(0.5)
    log({"step": step, "loss": value, "examples_seen": 8 * step, "wall_s": 0.5 * step, "examples_per_sec": 16.0})
    log({"step": step, "split": "val", "examples_seen": 8 * step, "cer": value})
"""


class PlantedProcessBackend(LocalBackend):
    """Runs a process per variant that logs one evaluation every half second, its planted
    CER constant (`learning_rate` x 1000), and saves and exits on SIGTERM like the trainer."""

    def run(self, jobs):
        planted = []
        for command, run_dir in jobs:
            bindings = dict(binding_value(c.split("=", 1)[1]) for c in command if c.startswith("--gin_param="))
            os.makedirs(run_dir, exist_ok=True)
            planted.append(([sys.executable, "-c", PLANTED_RUN, run_dir, str(bindings["learning_rate"] * 1000)],
                            run_dir))
        return super().run(planted)


def test_a_stop_request_and_a_run_record_appear_only_whole(tmp_path, monkeypatch):
    """A runner polls for its run's stop request while the study writes it (ASHA), and the
    study reads run records as runners write them: each file appears complete or not at
    all (an empty stop request once ended a study in a JSONDecodeError)."""
    written, real_dump = [], json.dump

    def dump(value, f, **kwargs):
        written.append((os.path.exists(os.path.join(tmp_path, backends.STOP)),
                        os.path.exists(os.path.join(tmp_path, DONE))))
        real_dump(value, f, **kwargs)
    monkeypatch.setattr(json, "dump", dump)
    backends.request_stop(str(tmp_path), rung=1)
    done = execute([sys.executable, "-c", "pass"], str(tmp_path), None)
    assert written == [(False, False), (True, False)]  # neither file existed while being written
    assert done["stopped_early"] == {"rung": 1} and backends.record(str(tmp_path)) == done


def test_asha_stops_the_clearly_losing_runs_and_they_never_win(tmp_path):
    lrs = {"a": 1e-4, "b": 5e-4, "c": 3e-4, "d": 9e-4}
    tiny = Study(name="asha", question="Which lr?", gin_files=["gin/ctc_dilated_small.gin"], metric="val/cer",
                 mode="min", early_stopping=ASHA(reduction=2, grace=1, min_runs=2),
                 stages=[Stage("lr", {k: [f"learning_rate = {v}"] for k, v in lrs.items()})])
    lines = []
    state = run_study(tiny, str(tmp_path), PlantedProcessBackend(parallel=4), log=lines.append)
    runs = state["stages"][0]["runs"]
    assert state["stages"][0]["winner"] == "a" and not runs["a"]["stopped_early"]
    for loser in "bcd":
        assert runs[loser]["stopped_early"] and not runs[loser]["failed"]
        assert len([r for r in read_metrics(runs[loser]["run_dir"]) if r.get("split") == "val"]) < 8
    assert len([r for r in read_metrics(runs["a"]["run_dir"]) if r.get("split") == "val"]) == 8
    assert "(stopped early at evaluation" in open(write_report(str(tmp_path))).read()
    run_study(tiny, str(tmp_path), PlantedProcessBackend(), log=lines.append)  # stopped runs count as finished
    assert all(json.loads(open(os.path.join(r["run_dir"], DONE)).read())["attempts"] == 1 for r in runs.values())


def test_halving_keeps_the_best_fraction_at_each_rung():
    judge = Halving(ASHA(reduction=3, grace=1, min_runs=3), mode="max")
    assert judge.judge("a", [0.9, 0.9, 0.9]) is None
    assert judge.judge("b", [0.5]) is None  # two runs at rung 1: too few to judge
    assert judge.judge("c", [0.4]) == 1  # three: only the best third goes on
    assert judge.judge("d", [0.95, 0.2, 0.1]) is None  # the best at rung 1; alone with a at rung 3
    assert judge.judge("e", [0.96, 0.5, 0.05]) == 3  # three at rung 3: e is not the best third


def test_a_variant_with_an_earlier_runs_settings_reuses_that_run(tmp_path):
    tiny = study()
    tiny.bindings = ["batch_size = 8", "batch_norm = True"]
    tiny.stages[1] = Stage("bn", {"bn-on": ["batch_norm = True"], "bn-off": ["batch_norm = False"]})
    backend = PlantedBackend()
    state = run_study(tiny, str(tmp_path), backend, log=lambda line: None)
    bn_on = state["stages"][1]["runs"]["bn-on"]  # padding-on with BatchNorm on: stage 1's winner again
    assert bn_on["same_as"] == str(tmp_path / "1-padding" / "padding-on_ctc_dilated_small")
    assert "bn-on_ctc_dilated_small" not in backend.submitted and len(backend.submitted) == 2 + 1 + 6
    assert bn_on["value"] == state["stages"][0]["runs"]["padding-on"]["value"]
    assert "| bn-on (= 1-padding/padding-on_ctc_dilated_small) |" in open(write_report(str(tmp_path))).read()


def test_axis_study_and_report_command_lines_run_a_real_axis(tmp_path):
    """`python -m launch.axis_study` trains one run per value (two at a time) and writes the
    report; `python -m tfaudio.report` writes it again from the folder."""
    data = audio_files.class_folders(str(tmp_path / "classes"))
    out = tmp_path / "axis"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run(
        [sys.executable, "-m", "launch.axis_study", "--gin_file=gin/classifier_digits.gin",
         "--gin_file=gin/common/tiny.gin", "--binding=dropout", "--values=0.0,0.5", "--metric=val/accuracy",
         "--mode=max", "--train_steps=3", f"--out={out}", "--parallel=2", f"--gin_param=data_dir = '{data}'",
         "--gin_param=num_classes = 3"], cwd=root, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = sorted(os.listdir(out / "1-dropout"))
    assert runs == ["dropout-0.0_classifier_digits", "dropout-0.5_classifier_digits"], runs
    for run in runs:
        assert [r["step"] for r in read_metrics(str(out / "1-dropout" / run)) if r.get("split") == "val"][-1] == 3
    report = (out / "report.md").read_text()
    assert all(run.split("_")[0] in report for run in runs) and "val/accuracy" in report
    os.remove(out / "report.md")
    again = subprocess.run([sys.executable, "-m", "tfaudio.report", str(out)], cwd=root, capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0 and (out / "report.md").read_text() == report, again.stderr[-2000:]


def test_study_command_line_takes_the_base_experiment_and_bindings_from_flags(tmp_path):
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-m", "launch.run", "launch/specs/ctc_sequential.py", "--dry_run",
                           f"--out={tmp_path}", "--gin_file=gin/ctc_dilated.gin",
                           "--gin_param=Trainer.max_minutes = 1"], cwd=root, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    commands = [line for line in done.stdout.splitlines() if line.startswith("$ ")]
    assert commands and all("--gin_file=gin/ctc_dilated.gin" in c and "ctc_dilated_small" not in c
                            and "'--gin_param=Trainer.max_minutes = 1'" in c and f"--model_dir={tmp_path}/" in c
                            for c in commands)
    assert not os.listdir(tmp_path)  # a dry run trains nothing


def test_the_003_batch_stage_gets_its_rates_from_the_trainers_square_root_rule():
    """Each batch variant's peak rate, as the trainer computes it from the bindings a run
    gets, is the winning rate x sqrt(batch / winning batch) x the variant's factor."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    study = load(os.path.join(root, "launch", "specs", "ctc_sequential.py"))
    study.gin_files = [os.path.join(root, f) for f in study.gin_files]
    winners = [["padding = True"], ["batch_norm = False"], ["optimizer = 'adam'", "learning_rate = 2e-3"]]
    opt = Opt(study, winners)
    variants = variants_of(next(s for s in study.stages if s.name == "batch"), opt)
    assert len(variants) == 9
    for batch, factor in ((4, 1), (16, 0.5), (8, 2)):
        bindings = study.bindings + [b for w in winners for b in w] + variants[f"batch{batch}-lr{factor:g}x"]
        config.parse(study.gin_files, bindings, finalize=False)
        rate = schedules.LearningRate().set_effective_batch(batch)
        assert rate == pytest.approx(2e-3 * (batch / 8) ** 0.5 * factor, rel=1e-3), (batch, factor)


@pytest.mark.parametrize("gin_file", ["gin/tacotron_8khz.gin", "gin/tacotron_8khz_attention.gin"])
def test_seed_001s_large_batch_study_builds_the_batches_rates_optimizers_and_log_it_names(gin_file):
    """Every variant of launch/specs/tacotron_large_batch.py, on either recipe, as the trainer
    would build it: effective batch, mode, optimizer, peak rate, and the log compression."""
    from tfaudio.experiment import build
    from tfaudio.training.batch_plan import BatchPlan
    from tfaudio.training.optimizers import make_optimizer
    from tfaudio.training.step import StepOptions

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    study = load(os.path.join(root, "launch", "specs", "tacotron_large_batch.py"))
    variants = variants_of(study.stages[0], Opt(study, []))
    assert len(variants) == 8
    built = {}
    for name, bindings in variants.items():
        config.parse([os.path.join(root, gin_file)], study.bindings + bindings + ["vocabulary.kind = 'characters'"],
                     finalize=False)
        batches = BatchPlan().at(0, 1)
        rate = schedules.LearningRate().set_effective_batch(batches.effective_batch)
        guarded = build()[1].spectra.compression.guarded
        built[name] = (batches.effective_batch, batches.mode, type(make_optimizer()).__name__, rate, guarded)
    lr = config.query("LearningRate.learning_rate")
    assert built["adam32"] == (32, "accumulate", "Adam", pytest.approx(lr), True)
    assert built["adam128"] == (128, "true", "Adam", pytest.approx(4 * lr), True)
    assert built["lamb256"] == (256, "true", "Lamb", pytest.approx(8 ** 0.5 * lr), True)
    assert built["adam256_accumulated"] == (256, "accumulate", "Adam", pytest.approx(8 * lr), True)
    assert built["lamb256_unguarded_log"][:4] == built["lamb256"][:4] and not built["lamb256_unguarded_log"][4]
    assert config.query("training_hooks.guard") is False  # the last variant parsed: no guard
    tracing = variants_of(study.stages[1], Opt(study, [variants["lamb256"]]))
    config.parse([os.path.join(root, gin_file)], study.bindings + variants["lamb256"] + tracing["eager"],
                 finalize=False)
    assert StepOptions().traced is False and BatchPlan().at(0, 1).effective_batch == 256


def test_a_folder_of_runs_started_by_hand_is_compared_by_the_bindings_they_differ_in(tmp_path):
    """Seed 000's way: one command per variant, no spec; the report's settings are what
    differs between the runs' operative configs, the winner the best final metric."""
    for name, batch, lr, cer in (("batch2x_", 16, "0.004", 0.30), ("base_", 8, "0.002", 0.35),
                                 ("lr2x_", 8, "0.004", 0.25)):
        run = tmp_path / name
        run.mkdir()
        (run / "operative_config.gin").write_text(
            f"# Macros:\nbatch_size = {batch}\nlearning_rate = {lr}\nstages = \\\n    ({batch}, 2)\n"
            "# Parameters for Trainer:\nBatchPlan.train_steps = 20\n")
        rows = [{"step": 20, "loss": 1.0, "examples_seen": 20 * batch, "wall_s": 4.0, "examples_per_sec": 40.0,
                 "effective_batch": batch, "micro_batch": batch, "batch_mode": "accumulate"},
                {"step": 20, "split": "val", "examples_seen": 20 * batch, "cer": cer}]
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "notes").mkdir()  # not a run: no metrics.jsonl
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-m", "tfaudio.report", str(tmp_path), "--metric=val/cer"], cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    report = (tmp_path / "report.md").read_text()
    rows = {line.split(" | ")[0].strip("| *"): line for line in report.splitlines() if line.startswith("| ")}
    assert sorted(rows) == ["base_", "batch2x_", "lr2x_", "variant"]
    assert "`batch_size = 16`<br>`learning_rate = 0.004`<br>`stages = (16, 2)`" in rows["batch2x_"]
    assert "| 320 |" in rows["batch2x_"] and "train_steps" not in report  # the same in every run
    assert "Winner by `val/cer` (final evaluation, min): **lr2x_**" in report
    empty = subprocess.run([sys.executable, "-m", "tfaudio.report", str(tmp_path / "notes")], cwd=root,
                           capture_output=True, text=True, timeout=120)
    assert empty.returncode == 2 and "no study.json and no run folders" in empty.stderr.strip().splitlines()[-1]


def write_evaluations(run, points):
    """A run folder whose metrics.jsonl holds, per (step, examples seen, wall seconds,
    validation metrics), the training row and the validation row of that step."""
    rows = []
    for step, examples, wall, metrics in points:
        rows += [{"step": step, "loss": 1.0, "examples_seen": examples, "wall_s": wall, "examples_per_sec": 1.0},
                 {"step": step, "split": "val", "examples_seen": examples, **metrics}]
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_the_report_opens_with_each_variant_at_the_examples_and_the_minutes_every_run_reached(tmp_path):
    """Seed 001's question, per example seen and per minute: a large batch that looks better
    per minute can be worse per example; each value is a run's last evaluation within the
    budget (on the clock, within 5% past it: runs stopped by one budget end seconds apart)."""
    curves = {"a32": [(1000, 10, 5.0), (2000, 20, 3.0), (3000, 30, 2.0)],
              "b128": [(1280, 8, 4.0), (2560, 12.5, 2.5), (3840, 24, 2.2)],  # 12.5 s: within 5% of 12
              "c256": [(2560, 6, 3.5), (5120, 12, 1.5)]}
    for name, points in curves.items():
        write_evaluations(tmp_path / name, [(step, examples, wall, {"free_mcd": mcd})
                                            for step, (examples, wall, mcd) in enumerate(points, 1)])
    report = open(write_report(str(tmp_path), "val/free_mcd", "min")).read()
    answer = report[report.index("**Answer**"):report.index("**Base settings.**")]
    assert ("- Per example seen: at 3,000 examples, as far as every run got: **a32** 2, b128 2.5 (+0.5), "
            "c256 3.5 (+1.5); 0 of 2 beat `a32`.") in answer
    assert ("- Per minute: at 0.2 training minutes, as far as every run got: **c256** 1.5 (-3.5), "
            "b128 2.5 (-2.5), a32 5; 2 of 2 beat `a32`.") in answer


def test_the_report_shows_when_attention_aligned_and_what_the_listener_understood(tmp_path):
    for name, aligned in (("heard", (0.2, 0.6, 0.8)), ("unheard", (0.0, 0.4, 0.2)), ("silent", (0.0, 0.0, 0.0))):
        write_evaluations(tmp_path / name, [(step, 32 * step, step / 10, {"free_mcd": 9.0, "free_aligned": share})
                                            for step, share in zip((100, 200, 300), aligned)])
    (tmp_path / "heard" / "listening").mkdir()
    (tmp_path / "heard" / "listening" / "summary.json").write_text(json.dumps(  # tts_intelligibility.py's
        {"real": {"exact": 14, "of": 20}, "resynthesis": {"exact": 13, "of": 20}, "synthesis": {"exact": 9, "of": 20}}))
    for name, speaks_at, heard in (("heard", 300, (1, 4, 11)), ("unheard", None, (0, 2, 2)),
                                   ("silent", None, (0, 0, 0))):
        (tmp_path / name / "listening").mkdir(exist_ok=True)
        (tmp_path / name / "listening" / "by_step.json").write_text(json.dumps(  # with --each_checkpoint
            {"real": {"exact": 14, "of": 20}, "speaks_at": speaks_at,
             "steps": [{"step": step, "exact": k, "of": 20} for step, k in zip((100, 200, 300), heard)]}))
    report = open(write_report(str(tmp_path), "val/free_mcd", "min")).read().splitlines()
    header = next(line for line in report if line.startswith("| variant")).split(" | ")

    def cells(column):
        return {line.split(" | ")[0].strip("| *"): line.split(" | ")[header.index(column)]
                for line in report if line.startswith("| ")}
    assert cells("heard (real)")["heard"] == "9/20 (14)" and cells("heard (real)")["unheard"] == "-"
    assert cells("aligned at step")["heard"] == "200" and cells("aligned at step")["unheard"] == "not yet"
    # The first of the best counts: where the listener first heard that much.
    speaks = cells("speaks at step")
    assert speaks["heard"] == "300" and speaks["unheard"] == "not yet (best 2/20 at 200)"
    assert speaks["silent"] == "not yet (0/20 at each of 3 steps)"
