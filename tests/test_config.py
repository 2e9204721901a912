"""Strict gin: typos, unknown configurables, wrong types; every shipped gin file trains."""

import glob
import json
import os
import re
import subprocess
import sys

import gin
import pytest

from tfaudio import config

GIN_FILES = sorted(glob.glob(os.path.join(config.REPO_GIN_DIR, "*.gin")))


def test_typo_names_closest_parameter(tmp_path):
    path = tmp_path / "x.gin"
    path.write_text("audio_geometry.sample_rate = 8000\naudio_geometry.hop_lenght = 64\n")
    with pytest.raises(config.ConfigError) as err:
        config.parse([str(path)])
    message = str(err.value)
    assert "x.gin:2" in message and "Did you mean 'hop_length'?" in message
    assert "\n" not in message


def test_typo_on_keras_class_is_caught_before_construction():
    with pytest.raises(config.ConfigError, match="'chanels'. Did you mean 'channels'"):
        config.parse([], ["AudioUNet.chanels = (8,)"])


def test_unknown_configurable_suggests(tmp_path):
    with pytest.raises(config.ConfigError, match="Did you mean 'AudioUNet'"):
        config.parse([], ["AudioUnet.depth = 3"])


def test_a_renamed_configurable_names_its_new_name_in_bindings_and_in_an_old_run(tmp_path):
    with pytest.raises(config.ConfigError, match="ParallelTacotron was renamed DurationTacotron") as err:
        config.parse([], ["ParallelTacotron.embedding_dim = 32"])
    assert "\n" not in str(err.value)
    (tmp_path / "operative_config.gin").write_text("build.model = @ParallelTacotron()\n")
    with pytest.raises(config.ConfigError, match="names ParallelTacotron, since renamed DurationTacotron: run sed"):
        config.load_run_config(str(tmp_path))


def test_a_moved_binding_names_its_new_place_and_an_old_run_reads_it_there(tmp_path):
    import tfaudio.compose  # noqa: F401  (registers Trainer, BatchPlan, training_hooks)
    with pytest.raises(config.ConfigError, match="Trainer.batch_multiplier moved: write BatchPlan.multiplier"):
        config.parse([], ["Trainer.batch_multiplier = 2"])
    (tmp_path / "operative_config.gin").write_text(
        "Trainer.batch_size = 16\nTrainer.batch_schedule = ((0, 16), (40, 8))\nTrainer.guard = False\n"
        "Trainer.steps_per_loop = 5\n")
    config.load_run_config(str(tmp_path))
    assert config.query("BatchPlan.batch_size") == 16 and config.query("BatchPlan.schedule") == ((0, 16), (40, 8))
    assert config.query("training_hooks.guard") is False and config.query("Trainer.steps_per_loop") == 5


def test_wrong_type_names_file_and_line(tmp_path):
    path = tmp_path / "t.gin"
    path.write_text("x = 1\nSeparationData.segment_seconds = 'long'\n")
    with pytest.raises(config.ConfigError, match=r"t.gin:2: SeparationData.segment_seconds = 'long'"):
        config.parse([str(path)])


def test_macro_values_are_type_checked(tmp_path):
    path = tmp_path / "m.gin"
    path.write_text("steps = 'many'\nBatchPlan.train_steps = %steps\n")
    with pytest.raises(config.ConfigError, match="expected int"):
        config.parse([str(path)])


def test_missing_gin_file():
    with pytest.raises(config.ConfigError, match="nope.gin.*not found"):
        config.parse(["nope.gin"])


@pytest.mark.parametrize("gin_file", GIN_FILES, ids=os.path.basename)
def test_shipped_gin_file_exposes_the_sweep_macros(gin_file):
    config.parse([gin_file], finalize=False)
    for macro in ("batch_size", "learning_rate", "train_steps", "accumulate_n", "eval_every", "data_dir"):
        assert gin.query_parameter(f"{macro}/macro.value") is not None, f"{gin_file} lacks the {macro} macro"


def test_exactly_one_tensorflow_per_install_and_the_gpu_extra_resolves(tmp_path):
    """The Makefile installs the cpu or the gpu extra, never both, and pip resolves the gpu
    extra (what a CUDA host installs) to TensorFlow with cuDNN, without tensorflow-cpu."""
    root = os.path.dirname(config.REPO_GIN_DIR)
    report = tmp_path / "report.json"
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--report", str(report),
                           "-e", f"{root}[gpu]"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    with open(report) as f:
        resolved = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in json.load(f)["install"]}
    assert resolved.get("tensorflow", "").startswith("2.21.") and "nvidia-cudnn-cu12" in resolved
    assert "tensorflow-cpu" not in resolved
    with open(os.path.join(root, "Makefile")) as f:
        installs = re.findall(r"pip install -q -e '\.\[([\w,]+)\]'", f.read())
    assert installs and all(sum(x in i.split(",") for x in ("cpu", "gpu", "tpu")) == 1 for i in installs)
