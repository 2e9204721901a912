"""DurationTacotron: the monotonic alignment search, duration expansion, and a tiny model that
learns durations and speaks for as long as they say."""

import itertools
import os

import numpy as np
import pytest
import tensorflow as tf

from tfaudio import compose as training
from tfaudio import config
from tfaudio.models.alignment_search import search, search_numpy
from tfaudio.models.duration_tacotron import DurationTacotron, expand
from tfaudio.run_dir import read_metrics

import audio_files


def _best_by_enumeration(log_likelihood, frames, symbols):
    """The highest summed log-likelihood over every split of `frames` into `symbols` runs."""
    best = -np.inf
    for cuts in itertools.combinations(range(1, frames), symbols - 1):
        bounds = (0, *cuts, frames)
        best = max(best, sum(log_likelihood[bounds[n]:bounds[n + 1], n].sum() for n in range(symbols)))
    return best


@pytest.mark.parametrize("implementation", ["tensorflow", "numpy"])
def test_monotonic_alignment_finds_the_best_monotonic_path(implementation):
    rng = np.random.default_rng(0)
    frames, symbols = np.array([9, 7, 5, 6]), np.array([5, 3, 5, 1])
    for _ in range(10):
        log_likelihood = rng.normal(size=(4, 9, 5)).astype(np.float32)
        path = (search(tf.constant(log_likelihood), frames, symbols).numpy() if implementation == "tensorflow"
                else search_numpy(log_likelihood, frames, symbols))
        for b in range(4):
            valid = path[b, :frames[b], :symbols[b]]
            assert (valid.sum(1) == 1).all() and path[b].sum() == frames[b]  # one symbol per valid frame
            moves = np.diff(valid.argmax(1))
            assert set(moves.tolist()) <= {0, 1} and valid[0, 0] == 1 and valid[-1, -1] == 1
            score = (valid * log_likelihood[b, :frames[b], :symbols[b]]).sum()
            assert score == pytest.approx(_best_by_enumeration(log_likelihood[b], frames[b], symbols[b]), rel=1e-5)


def test_the_tensorflow_search_equals_the_numpy_one_and_compiles_with_xla():
    rng = np.random.default_rng(1)
    log_likelihood = rng.normal(size=(6, 40, 12)).astype(np.float32)
    frames, symbols = np.array([40, 31, 12, 25, 40, 7]), np.array([12, 9, 12, 3, 1, 7])
    expected = search_numpy(log_likelihood, frames, symbols)
    compiled = tf.function(search, jit_compile=True)
    for fn in (search, compiled):
        np.testing.assert_array_equal(fn(tf.constant(log_likelihood), tf.constant(frames, tf.int32),
                                         tf.constant(symbols, tf.int32)).numpy(), expected)


def test_expand_repeats_each_symbol_by_its_duration():
    path = expand(tf.constant([[2, 1, 3], [1, 1, 0]]), 6).numpy()
    assert path.shape == (2, 6, 3)
    np.testing.assert_array_equal(path[0].argmax(1), [0, 0, 1, 2, 2, 2])
    np.testing.assert_array_equal(path[1].sum(1), [1, 1, 0, 0, 0, 0])  # frames past the end: no symbol


def test_synthesis_lasts_as_long_as_the_predicted_durations_and_respects_the_bound():
    model = DurationTacotron(vocab_size=10, n_mels=8, embedding_dim=8, conv_channels=8, encoder_units=4,
                             duration_channels=8, decoder_channels=8, decoder_layers=2, postnet_layers=2,
                             postnet_channels=8)
    ids, length = tf.constant([[3, 4, 5, 1], [3, 1, 0, 0]]), tf.constant([4, 2])
    model.infer(ids, length)
    # Several frames per symbol: exp(1.2) - 1 = 2.3 before rounding (3 rounded up, 2 to nearest).
    model.duration_out.weights[1].assign([1.2])
    out = model.infer(ids, length)
    # The durations the predictor asked for, rounded up, at least one frame per real symbol.
    log_durations = model.encode(ids, length)[2].numpy()
    real = np.arange(4) < length.numpy()[:, None]
    wanted = np.maximum(np.ceil(np.exp(log_durations) - 1.0), 1.0).astype(int) * real
    np.testing.assert_array_equal(out["durations"].numpy(), wanted)
    # Each symbol holds the frames of its duration, in order, and nothing follows the text.
    path = out["alignments"].numpy()
    for b in range(2):
        frames = int(wanted[b].sum())
        np.testing.assert_array_equal(np.argmax(path[b, :frames], -1), np.repeat(np.arange(4), wanted[b]))
        assert path[b, :frames].sum() == frames and path[b, frames:].sum() == 0
    assert out["mel_post"].shape[1] == wanted.sum(1).max()
    bounded = model.infer(ids, length, max_steps=tf.constant(3))
    assert bounded["alignments"].numpy().sum(axis=(1, 2)).max() <= 3


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """tacotron_8khz.gin at tiny sizes, 64 utterances, 300 steps."""
    root = tmp_path_factory.mktemp("durations")
    data = audio_files.char_speech(str(root / "chars"), n=64)
    config.parse([os.path.join(config.REPO_GIN_DIR, "tacotron_8khz.gin")], [
        f"data_dir = '{data}'", "vocabulary.kind = 'characters'", "train_steps = 300", "eval_every = 150",
        "batch_size = 8", "learning_rate = 3e-3", "LearningRate.warmup_steps = 10", "AudioData.max_seconds = 2.0",
        "AudioData.val_fraction = 0.1", "DurationTacotron.embedding_dim = 32", "DurationTacotron.conv_channels = 32",
        "DurationTacotron.encoder_units = 16", "DurationTacotron.duration_channels = 32",
        "DurationTacotron.decoder_channels = 32", "DurationTacotron.decoder_layers = 2",
        "TacotronTask.griffin_lim_iterations = 8",
        "Trainer.steps_per_loop = 25"], finalize=False)
    run = str(root / "run")
    training.train(run, tracker="none")
    return run


def test_tiny_run_finds_and_predicts_the_letters_durations(trained_run):
    """Each letter of the tiny corpus is a 50 ms tone, 4 frames at a 12.5 ms hop: the search
    must find that, and synthesis from the restored run must speak letters that long (within
    1.5 frames on average: the final punctuation and the end token, silent here, take a frame
    each from the last letter)."""
    from tfaudio.data.audio_data import AudioData
    from tfaudio.experiment import restore_for_inference

    val = [r for r in read_metrics(trained_run) if r.get("split") == "val"]
    assert val[-1]["mel_l1"] < 0.8 * val[0]["mel_l1"]
    model, task = restore_for_inference(trained_run)
    batch = next(iter(AudioData().train(8, seed=0)))
    inputs = task.teacher_forced_inputs(batch, model)[0]
    letters = np.isin(batch["text_ids"].numpy(), [task.vocabulary.encode(c)[0] for c in "abcdefghijklmnopqrstuvwxyz"])
    searched = model(inputs)["durations"].numpy()[letters]
    assert np.mean(np.abs(searched - 4)) < 1.5, searched
    predicted = model.infer(batch["text_ids"], batch["text_length"])["durations"].numpy()[letters]
    assert np.mean(np.abs(predicted - 4)) < 1.5, predicted
