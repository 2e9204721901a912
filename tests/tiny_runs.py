"""Tiny real runs of the shipped experiments for the tests: small sizes on audio made
here, two steps; `TinyRuns` trains each shipped gin file once per test session."""

import os

import numpy as np

from tfaudio import config
from tfaudio.training import run as training

import audio_files


def tiny_params(gin_file, tmp_path):
    """Bindings that make `gin_file` a two-step run on audio written under tmp_path."""
    params = ["batch_size = 2", "train_steps = 2", "eval_every = 2", "Trainer.steps_per_loop = 1"]
    if os.path.basename(gin_file).startswith("tacotron"):
        data = audio_files.char_speech(str(tmp_path / "speech"), n=12)
        # The tiny corpus spells letters as tones, so characters are its vocabulary.
        params += ["AudioData.val_fraction = 0.3", "TacotronTask.max_decoder_steps = 20",
                   "vocabulary.kind = 'characters'", "Tacotron.attention_rnn_units = 64",
                   "Tacotron.decoder_rnn_units = 64", "Tacotron.postnet_channels = 32",
                   "ParallelTacotron.embedding_dim = 32", "ParallelTacotron.conv_channels = 32",
                   "ParallelTacotron.encoder_units = 16", "ParallelTacotron.decoder_channels = 32"]
    elif os.path.basename(gin_file).startswith("classifier"):
        data = audio_files.class_folders(str(tmp_path / "classes"))
        params += ["num_classes = 3", "crop_seconds = 0.5", "Classifier.head_units = 8",
                   "ClassificationTask.stats_examples = 8"]
    elif os.path.basename(gin_file).startswith("ctc"):
        data = audio_files.char_speech(str(tmp_path / "speech"), n=12)
        params += ["AudioData.val_fraction = 0.3", "DilatedCTC.channels = 8", "DilatedCTC.skip_channels = 8",
                   "max_dilation = 4", "num_stacks = 1"]
    else:
        data = audio_files.mixtures(str(tmp_path / "mixtures"))
    if os.path.basename(gin_file).startswith("openunmix"):  # the tiny corpus' stems, small sizes
        params += ["SeparationData.target = 'speech'", "SeparationData.others = ('music',)",
                   "SeparationData.val_split = 'valid'", "SeparationData.segment_seconds = 1.0",
                   "SeparationData.val_seconds = 1.0", "OpenUnmix.hidden_size = 32"]
    return [f"data_dir = '{data}'"] + params


def train(run, gin_files, params):
    """The Trainer of `gin_files` + `params` after training into `run`."""
    config.parse(gin_files, params, finalize=False)
    return training.train(run, tracker="none")[0]


def arrays(trainer) -> dict:
    """Every model variable ("raw/<name>") and its EMA ("ema/<name>") as numpy."""
    named, ema = trainer.inner.model_vars, trainer.inner.ema
    out = {f"raw/{n}": np.asarray(v.numpy()) for n, v in named.items()}
    if ema is not None:
        out.update({f"ema/{n}": np.asarray(ema.shadows[n].numpy()) if n in ema.shadows
                    else out[f"raw/{n}"] for n in named})
    return out


class TinyRuns:
    """Each shipped gin file trained two steps once per session, shared by the tests that
    read a trained run (restore, export): {name: (run directory, expected.npz)}, where
    expected.npz holds `arrays`, one batch ("batch/<key>") and its loss."""

    def __init__(self, root):
        self.root, self.runs = root, {}

    def __call__(self, gin_file: str) -> tuple[str, str]:
        name = os.path.basename(gin_file)
        if name not in self.runs:
            folder = self.root / name[:-len(".gin")]
            folder.mkdir()
            path = os.path.join(config.REPO_GIN_DIR, name)
            trainer = train(str(folder / "run"), [path], tiny_params(path, folder))
            batch = {k: v for k, v in trainer.sample_batch.items()}
            expected = arrays(trainer)
            expected.update({f"batch/{k}": v.numpy() for k, v in batch.items()})
            expected["loss"] = trainer.task.loss(trainer.model, batch, training=False)[0].numpy()
            np.savez(folder / "expected.npz", **expected)
            self.runs[name] = str(folder / "run"), str(folder / "expected.npz")
        return self.runs[name]

