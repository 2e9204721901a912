"""Tiny real runs of the shipped experiments for the tests: small sizes on audio made
here, two steps; `TinyRuns` trains each shipped gin file once per test session, shared by
the session's parallel workers."""

import fcntl
import os

import numpy as np

from tfaudio import compose as training
from tfaudio import config

import audio_files

TINY = os.path.join(config.REPO_GIN_DIR, "common", "tiny.gin")
# Bindings that make inference deterministic, for tests that compare two computations: the
# attention Tacotron's prenet drops out at inference too.
NO_DROPOUT = {"tacotron_8khz_attention.gin": ["Tacotron.prenet_dropout = 0.0"]}
# Steps of a tiny run that must learn (test_checkpoints.LEARNS states by how much).
LEARNING_STEPS = 20


def tiny_files(gin_file) -> list:
    """`gin_file` at tiny sizes (gin/common/tiny.gin: two steps, small layers)."""
    return [gin_file, TINY]


def tiny_params(gin_file, tmp_path):
    """Bindings that point `gin_file` at audio written under tmp_path (with `tiny_files`)."""
    name = os.path.basename(gin_file)
    if name.startswith("tacotron"):
        data = audio_files.char_speech(str(tmp_path / "speech"), n=12)
        # The tiny corpus spells letters as tones, so characters are its vocabulary.
        params = ["vocabulary.kind = 'characters'"]
    elif name.startswith("classifier"):
        data = audio_files.class_folders(str(tmp_path / "classes"))
        params = ["num_classes = 3"]
    elif name.startswith("ctc"):
        data = audio_files.char_speech(str(tmp_path / "speech"), n=12)
        params = []
    else:
        data = audio_files.mixtures(str(tmp_path / "mixtures"))
        params = []
    if name == "openunmix.gin":  # MUSDB18-HQ's stems and split names in the reference recipe
        params += ["SeparationData.target = 'speech'", "SeparationData.others = ('music',)",
                   "SeparationData.val_split = 'valid'"]
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


def final_and_initial_loss(trainer, run) -> tuple[float, float]:
    """The validation loss (inference mode, every validation example) after training,
    then with the trainable weights of the step-0 checkpoint: what the optimizer's
    updates did, BatchNorm's statistics apart (the model is left so)."""
    def loss():
        return trainer.inner.evaluate(trainer.val_dataset, None)["loss"]
    final = loss()
    state = [(v, v.numpy()) for v in trainer.model.non_trainable_variables]
    trainer.checkpoints.restore(os.path.join(run, "checkpoints", "ckpt-0"))
    for variable, value in state:
        variable.assign(value)
    return final, loss()


class TinyRuns:
    """Each shipped gin file trained `steps` steps (enough for each recipe's loss to fall:
    test_checkpoints.LEARNS) once per session, inference without dropout, shared by the
    tests that read a trained run (restore, export, learning): {name: (run directory,
    expected.npz)}, where expected.npz holds `arrays`, one validation batch
    ("batch/<key>") and its loss after training ("loss", per example), and the validation
    loss after training and with the step-0 trainable weights ("val_loss",
    "initial_val_loss": `final_and_initial_loss`). `root` may be shared by
    parallel test workers: a lock per gin file lets one train it, the others wait and read."""

    def __init__(self, root, steps: int = LEARNING_STEPS):
        self.root, self.steps = root, steps

    def __call__(self, gin_file: str) -> tuple[str, str]:
        name = os.path.basename(gin_file)[:-len(".gin")]
        folder = self.root / name
        run, expected_file = str(folder / "run"), str(folder / "expected.npz")
        with open(self.root / f"{name}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not os.path.exists(expected_file):
                folder.mkdir(exist_ok=True)
                path = os.path.join(config.REPO_GIN_DIR, name + ".gin")
                params = tiny_params(path, folder) + NO_DROPOUT.get(name + ".gin", []) + [
                    f"train_steps = {self.steps}", f"eval_every = {self.steps}"]
                trainer = train(run, tiny_files(path), params)
                batch = dict(trainer.sample_batch)
                expected = arrays(trainer)
                expected.update({f"batch/{k}": v.numpy() for k, v in batch.items()})
                expected["loss"] = trainer.task.loss(trainer.model, batch, training=False)[0].numpy()
                expected["val_loss"], expected["initial_val_loss"] = final_and_initial_loss(trainer, run)
                np.savez(expected_file + ".part.npz", **expected)
                os.replace(expected_file + ".part.npz", expected_file)
        return run, expected_file
