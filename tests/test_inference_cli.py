"""The inference commands as a user runs them: a wrong flag, an output folder that cannot
be made, or inputs none of which is audio end the command with one line and exit 2
before any model loads (the run directory named here does not even exist)."""

import os
import subprocess
import sys

import pytest

import audio_files

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

MISTAKES = [  # (command, arguments, what the one line must say)
    ("separate", ["--input=GOOD", "--chunk_seconds=0"], "--chunk_seconds=0.0 must be positive"),
    ("separate", ["--input=GOOD", "--overlap=1.0"], "--overlap=1.0 must lie in [0, 1)"),
    ("separate", ["--input=GOOD", "--overlap=-0.5"], "--overlap=-0.5"),
    ("separate", ["--input=GOOD", "--block_samples=0", "--stream"], "--block_samples=0"),
    ("separate", ["--input=GOOD", "--wiener_iterations=1", "--stream"], "--wiener_iterations=1"),
    ("separate", ["--input=GOOD", "--output_dir=/proc/nope"], "--output_dir: cannot create /proc/nope"),
    ("separate", [], "give at least one --input"),
    ("classify", ["--input=GOOD", "--top_k=0"], "--top_k=0 must be at least 1"),
    ("transcribe", ["--input=GOOD", "--beam_width=0"], "--beam_width=0 must be at least 1"),
    ("transcribe", ["--input", "BAD", "MISSING"], "none of the 2 inputs is readable audio"),
    ("classify", ["--input=EMPTY_FOLDER"], "names no audio file"),
    ("synthesize", ["--text=hi", "--output=/proc/nope/o.wav"], "--output: cannot create /proc/nope"),
    ("synthesize", ["--text", "Press", "one."], "unexpected argument 'one.': quote the text"),
    ("synthesize", ["--text=   "], "--text is empty"),
    ("synthesize", ["--text=hi", "--text_file=t.txt"], "exactly one of --text or --text_file"),
    ("synthesize", ["--text=hi", "--max_steps=0"], "--max_steps=0 must be at least 1"),
    ("export", ["--output=/proc/nope"], "--output: cannot create /proc/nope"),
]


@pytest.mark.parametrize("command,args,says", MISTAKES, ids=[f"{m[0]} {' '.join(m[1])}" for m in MISTAKES])
def test_an_inference_mistake_is_one_line_and_exit_2_before_the_model(tmp_path, command, args, says):
    files = {"GOOD": audio_files.write(str(tmp_path / "good.wav"), audio_files.tone(0.2)),
             "BAD": str(tmp_path / "bad.wav"), "MISSING": str(tmp_path / "missing.wav"),
             "EMPTY_FOLDER": str(tmp_path / "empty")}
    (tmp_path / "bad.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    (tmp_path / "empty").mkdir()
    for name, path in files.items():
        args = [a.replace(name, path) for a in args]
    proc = subprocess.run([sys.executable, "-m", f"tfaudio.{command}", f"--model_dir={tmp_path / 'no_run'}", *args],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and says in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def separator_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("separator")
    data = audio_files.mixtures(str(folder / "mixtures"), n_train=2, n_valid=1)
    params = [f"data_dir = '{data}'", "batch_size = 2", "train_steps = 1", "eval_every = 1",
              "Trainer.steps_per_loop = 1", "AudioUNet.channels = (4, 8, 8, 8)"]
    proc = subprocess.run([sys.executable, "-m", "tfaudio.train", "--gin_file=gin/audio_unet.gin",
                           f"--model_dir={folder / 'run'}", "--tracker=none"] + [f"--gin_param={p}" for p in params],
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return folder / "run"


def test_every_file_after_input_is_separated_and_a_wrong_family_is_one_line(separator_run, tmp_path):
    mixtures = [audio_files.write(str(tmp_path / f"m{i}.wav"), audio_files.tone(0.5, 8000, 300 + 100 * i))
                for i in range(2)]
    proc = subprocess.run([sys.executable, "-m", "tfaudio.separate", f"--model_dir={separator_run}",
                           f"--output_dir={tmp_path / 'out'}", "--input", *mixtures],  # as a shell expands *.wav
                          capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(os.listdir(tmp_path / "out")) == ["m0_music.wav", "m0_speech.wav", "m1_music.wav",
                                                   "m1_speech.wav"]
    proc = subprocess.run([sys.executable, "-m", "tfaudio.synthesize", f"--model_dir={separator_run}", "--text=hi",
                           f"--output={tmp_path / 'o.wav'}"], capture_output=True, text=True, timeout=300, cwd=REPO)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "SeparationTask, which cannot synthesize" in errors[0]
    assert "Traceback" not in proc.stderr and not (tmp_path / "o.wav").exists()


def test_a_checkpoint_that_does_not_exist_is_one_line(separator_run, tmp_path):
    mixture = audio_files.write(str(tmp_path / "m.wav"), audio_files.tone(0.5))
    proc = subprocess.run([sys.executable, "-m", "tfaudio.separate", f"--model_dir={separator_run}",
                           f"--checkpoint={separator_run}/checkpoints/ckpt-7", f"--input={mixture}",
                           f"--output_dir={tmp_path / 'out'}"], capture_output=True, text=True, timeout=300, cwd=REPO)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "ckpt-7: no such checkpoint" in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("command,says", [
    (["tfaudio.prepare", "nonsense"], "'nonsense' is none of them"),
    (["tfaudio.report", "no_such_folder"], "no_such_folder: no such folder"),
])
def test_prepare_and_report_name_what_is_wrong_in_one_line(tmp_path, command, says):
    proc = subprocess.run([sys.executable, "-m", *command], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and says in errors[0], proc.stderr[-2000:]
