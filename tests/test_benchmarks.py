"""Every script in benchmarks/ starts and finishes in its --smoke mode (tiny sizes, a step
or two) on corpora written here in the layouts the scripts read from data/, so a
benchmark that stops working fails CI. Their numbers are measured elsewhere
(docs/benchmarks.md); here a script must run to its end and print its results. Each runs
as `__main__` with its command line in the test process, which has TensorFlow loaded
already (a fresh process costs about 4 s of imports); the processes the scripts start
themselves are real."""

import glob
import importlib.util
import json
import os
import runpy
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import audio_files

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = sorted(os.path.basename(p) for p in glob.glob(os.path.join(ROOT, "benchmarks", "*.py")))
# Scripts that set the process's TensorFlow thread counts, which an initialised process refuses.
FRESH_PROCESS = {"ctc_quality.py"}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A folder whose data/ holds tiny corpora under the names `tfaudio.prepare` gives."""
    root = tmp_path_factory.mktemp("bench")
    data = root / "data"
    audio_files.char_speech(str(data / "asterisk"), n=24)
    audio_files.char_speech(str(data / "espeak"), n=24, seed=1)
    audio_files.mixtures(str(data / "mixtures"))
    for task, classes in (("langid", 5), ("digits", 10)):
        audio_files.class_folders(str(data / task), classes=classes, per_class=2, splits=("train", "valid", "test"))
        (data / task / "classes.txt").write_text("".join(f"c{k}\n" for k in range(classes)))
    return root


def run_arguments(script, tiny_runs, workdir) -> list:
    """The flags a script needs beside --smoke: the trained runs it reads."""
    if script == "export_speed.py":
        return [f"--model_dirs={tiny_runs('classifier_digits.gin')[0]}"]
    if script == "tts_intelligibility.py":
        run = workdir / "tts_run"
        if not run.exists():
            shutil.copytree(tiny_runs("tacotron_8khz.gin")[0], run)
        return [f"--model_dir={run}", "--each_checkpoint"]
    if script == "tts_exposure.py":
        run = workdir / "attention_run"
        if not run.exists():
            shutil.copytree(tiny_runs("tacotron_8khz_attention.gin")[0], run)
        return [f"--model_dir={run}"]
    return []


def run_script(script, arguments, workdir, monkeypatch, capsys) -> str:
    """`python benchmarks/<script> <arguments>` run from workdir; its standard output."""
    path = os.path.join(ROOT, "benchmarks", script)
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("PYTHONPATH", ROOT)
    if script in FRESH_PROCESS:
        done = subprocess.run([sys.executable, path, *arguments], env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, f"{script} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
        return done.stdout
    monkeypatch.setattr(sys, "argv", [path, *arguments])
    try:
        runpy.run_path(path, run_name="__main__")
    except SystemExit as stop:
        assert stop.code in (None, 0), f"{script} exited: {stop.code}\n{capsys.readouterr().out[-2000:]}"
    return capsys.readouterr().out


@pytest.mark.parametrize("script", SCRIPTS)
def test_benchmark_runs_in_smoke_mode(script, workdir, tiny_runs, monkeypatch, capsys):
    out = run_script(script, ["--smoke"] + run_arguments(script, tiny_runs, workdir), workdir, monkeypatch, capsys)
    assert any(ch.isdigit() for ch in out), out
    if script == "tts_intelligibility.py":  # what tfaudio.report shows in the run's row
        assert (workdir / "tts_run" / "listening" / "summary.json").exists()
        listened = json.loads((workdir / "tts_run" / "listening" / "by_step.json").read_text())
        kept = tf.train.get_checkpoint_state(str(workdir / "tts_run" / "checkpoints")).all_model_checkpoint_paths
        assert [r["step"] for r in listened["steps"]] == sorted(int(p.rsplit("-", 1)[1]) for p in kept)
    if script == "tts_exposure.py":  # the spectrograms, and the four errors per prompt
        assert len(list((workdir / "attention_run" / "listening").glob("*_exposure.png"))) == 2
        assert set(json.loads(out.splitlines()[-1])) == {"teacher-forced", "other text", "free head", "free rest"}


def listening_benchmark():
    """benchmarks/tts_intelligibility.py as a module."""
    spec = importlib.util.spec_from_file_location("tts_intelligibility",
                                                  os.path.join(ROOT, "benchmarks", "tts_intelligibility.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_listener_counts_a_non_finite_synthesis_as_not_understood_without_listening():
    """A diverged model's NaN audio (seed 001's adam256) is judged without the recogniser
    or the MCD, which would end the benchmark in a traceback."""
    module = listening_benchmark()
    wave = np.array([0.1, np.nan, 0.2], np.float32)
    assert module.judge(None, None, wave, np.zeros(3, np.float32), 8000) == (module.NOT_FINITE, None)


def test_speech_emerges_at_the_first_step_understood_at_least_0_7x_as_often_as_the_recordings():
    speaks_at = listening_benchmark().speaks_at
    rows = [{"step": 300, "exact": 9}, {"step": 100, "exact": 6}, {"step": 200, "exact": 7}, {"step": 400, "exact": 5}]
    assert speaks_at(rows, 10) == 200  # 7 of the recordings' 10: exactly 0.7x
    assert speaks_at(rows, 14) is None and speaks_at(rows, 0) is None
