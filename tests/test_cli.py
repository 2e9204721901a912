"""`python -m tfaudio.train` as a user runs it: a tiny real run writes its record and
prints its results; every configuration mistake is one line, exit code 2, and leaves
no run directory behind."""

import json
import os
import subprocess
import sys

import pytest

from tfaudio import train as cli
from tfaudio.run_dir import read_metrics

import audio_files

TINY = ["batch_size = 2", "train_steps = 2", "eval_every = 2", "Trainer.steps_per_loop = 1",
        "AudioUNet.channels = (4, 8, 8, 8)"]


@pytest.fixture(scope="module")
def mixtures(tmp_path_factory):
    return audio_files.mixtures(str(tmp_path_factory.mktemp("mixtures")))


@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    return audio_files.char_speech(str(tmp_path_factory.mktemp("speech")), n=12)


def test_train_command_writes_the_run_record_and_prints_results(tmp_path, mixtures):
    run = tmp_path / "run"
    args = [sys.executable, "-m", "tfaudio.train", "--gin_file=gin/audio_unet.gin", f"--model_dir={run}",
            "--seed=3", "--tracker=tensorboard", f"--gin_param=data_dir = '{mixtures}'"]
    out = subprocess.run(args + [f"--gin_param={p}" for p in TINY], capture_output=True, text=True,
                         timeout=300, cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 0, out.stderr[-3000:]
    assert f"run directory: {run}" in out.stdout and "\nval loss=" in out.stdout
    for name in ("command.txt", "config.gin", "operative_config.gin", "versions.json", "progress.log"):
        assert (run / name).stat().st_size > 0, name
    assert "--seed=3" in (run / "command.txt").read_text()
    assert "AudioUNet.channels = (4, 8, 8, 8)" in (run / "operative_config.gin").read_text()
    assert json.loads((run / "versions.json").read_text())["tensorflow"].startswith("2.")
    assert os.listdir(run / "tensorboard")
    assert [r["step"] for r in read_metrics(str(run)) if "loop_steps" in r] == [1, 2]


def wrong(tmp_path, gin_file, *params, flags=()):
    """Runs the command in this process; returns (exit code, stderr lines, run dir exists)."""
    run = tmp_path / "run"
    argv = ["train", f"--gin_file={gin_file}", f"--model_dir={run}", "--tracker=none", *flags]
    argv += [f"--gin_param={p}" for p in TINY + list(params)]
    cli.FLAGS.unparse_flags()
    cli.FLAGS(argv)
    try:
        cli.main(argv)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, run.exists()


MISTAKES = [  # (gin file, binding or flag, what the line must name)
    ("audio_unet.gin", "BatchPlan.batch_sise = 2", "batch_size"),
    ("audio_unet.gin", "Trainer.batch_size = 2", "Trainer.batch_size moved: write BatchPlan.batch_size"),
    ("audio_unet.gin", "Trainr.batch_size = 2", "Trainer"),
    ("audio_unet.gin", "BatchPlan.batch_size = 'two'", "BatchPlan.batch_size"),
    ("audio_unet.gin", "BatchPlan.batch_size = 0", "BatchPlan.batch_size"),
    ("audio_unet.gin", "data_dir = '/no/such/corpus'", "/no/such/corpus"),
    ("audio_unet.gin", "SeparationTask.losses = {'sisdr': 1.0}", "SeparationTask.losses"),
    ("audio_unet.gin", "AudioUNet.channels = (4, 8)", "AudioUNet.channels"),
    ("audio_unet.gin", "AudioUNet.norm = 'group'", "AudioUNet.norm"),
    ("audio_unet.gin", "make_optimizer.name = 'adamw2'", "make_optimizer.name"),
    ("audio_unet.gin", "StepOptions.precision = 'float8'", "StepOptions.precision"),
    ("audio_unet.gin", "LearningRate.scaling_rule = 'cubic'", "LearningRate.scaling_rule"),
    ("audio_unet.gin", "ExponentialDecay.decay_rate = 2.0", "ExponentialDecay"),
    ("audio_unet.gin", "CheckpointConfig.best_metric = 'loss'", "CheckpointConfig.best_metric"),
    ("audio_unet.gin", "CheckpointConfig.best_metric = 'val/no_such_metric'", "choose one of val/examples, val/loss"),
    ("audio_unet.gin", "training_hooks.early_stopping = @EarlyStopping()\nEarlyStopping.metric = 'train_subset/loss'",
     "no split 'train_subset'"),
    ("audio_unet.gin", "BatchPlan.schedule = ((0, 32), (600,))", "BatchPlan.schedule"),
    ("openunmix_8khz.gin", "OpenUnmix.bandwidth = 1e6", "Nyquist (audio_geometry.sample_rate x 0.5 = 4000)"),
    ("classifier_langid.gin", "crop_seconds = -1.0", "AudioData.fixed_seconds = %crop_seconds = -1.0"),
    ("tacotron_8khz.gin", "audio_geometry.n_mels = 0", "audio_geometry.n_mels = 0"),
    ("tacotron_8khz.gin", "AudioData.layout = 'class_folders'", "a class layout needs two or more"),
    ("tacotron_8khz.gin", "AudioData.max_seconds = 0.01", "files longer than AudioData.max_seconds"),
    ("audio_unet.gin", "SeparationData.target = 'vocals'", "missing vocals.wav"),
    ("audio_unet.gin", "CheckpointConfig.init_modules = ('encoder',)", "name it with CheckpointConfig.init_from"),
    ("audio_unet.gin", "CheckpointConfig.init_from = '/no/such/run'", "CheckpointConfig.init_from"),
    ("audio_unet.gin", "DivergenceGuard.backoff = 1.5", "DivergenceGuard.backoff"),
    ("audio_unet.gin", "SeparationData.data_percentage = 0.0", "SeparationData.data_percentage"),
    ("audio_unet.gin", "Trainer.steps_per_loop = ", "<--gin_param>"),
    ("tacotron_8khz.gin", "AudioData.feature = 'mfcc'", "AudioData.feature"),
    ("tacotron_8khz.gin", "AudioData.pad_method = 'loop'", "AudioData.pad_method"),
    ("tacotron_8khz_attention.gin", "Tacotron.encoder = 'rnn'", "Tacotron.encoder"),
    ("tacotron_8khz.gin", "TacotronTask.spectrum_loss = 'l3'", "TacotronTask.spectrum_loss"),
    ("tacotron_8khz.gin", "vocabulary.unknown = 'keep'", "vocabulary.unknown"),
    ("tacotron_8khz.gin", "vocabulary.kind = 'graphemes'", "vocabulary.kind"),
    ("openunmix_8khz.gin", "OpenUnmix.hidden_size = 7", "OpenUnmix.hidden_size"),
    ("openunmix_8khz.gin", "SeparationData.channels = 3", "SeparationData.channels"),
    ("openunmix_8khz.gin", "SeparationData.augment_gain = (1.5, 0.5)", "SeparationData.augment_gain"),
    ("openunmix_8khz.gin", "audio_geometry.hop_length = 1024", "audio_geometry.hop_length"),
    ("no_such_experiment.gin", "batch_size = 2", "no_such_experiment.gin"),
]


@pytest.mark.parametrize("gin_file,binding,named", MISTAKES, ids=[m[1] for m in MISTAKES])
def test_a_configuration_mistake_is_one_line_and_exit_2_before_any_file(tmp_path, capsys, mixtures, speech,
                                                                       gin_file, binding, named):
    # The speech corpus spells letters as tones, so characters are its vocabulary.
    data = [f"data_dir = '{speech}'", "vocabulary.kind = 'characters'"] if gin_file.startswith("tacotron") else [
        f"data_dir = '{mixtures}'"]
    code, run_exists = wrong(tmp_path, gin_file, *data, binding)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(("config error:", "error:"))]
    assert code == 2 and len(lines) == 1 and named in lines[0], err[-2000:]
    assert "Traceback" not in err and not run_exists


def test_a_model_dir_that_cannot_be_created_is_one_line(tmp_path, capsys, mixtures):
    (tmp_path / "a_file").write_text("")
    code, _ = wrong(tmp_path / "a_file", "audio_unet.gin", f"data_dir = '{mixtures}'")
    assert code == 2 and "a_file is not a writable folder" in capsys.readouterr().err


def test_a_tpu_strategy_without_a_tpu_is_one_line(tmp_path, mixtures):
    # In a subprocess: connecting to a TPU cluster resets this process' TensorFlow context.
    run = tmp_path / "run"
    args = [sys.executable, "-m", "tfaudio.train", "--gin_file=gin/audio_unet.gin", f"--model_dir={run}",
            "--strategy=tpu", "--tracker=none", f"--gin_param=data_dir = '{mixtures}'"]
    out = subprocess.run(args + [f"--gin_param={p}" for p in TINY], capture_output=True, text=True, timeout=300,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    lines = [line for line in out.stderr.splitlines() if line.startswith(("config error:", "error:"))]
    assert out.returncode == 2 and len(lines) == 1 and "--strategy=tpu" in lines[0], out.stderr[-2000:]
    assert "Traceback" not in out.stderr and not run.exists()
