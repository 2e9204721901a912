"""The dilated CTC recogniser: receptive field, padding that never leaks, the CTC loss
on a hand-computed case, greedy and beam decoding, corpus-level error rates, every
architecture switch training, and `transcribe` on files made here."""

import itertools
import os
import subprocess
import sys

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfaudio import compose as training
from tfaudio import config
from tfaudio.data.text import TranscriptVocabulary
from tfaudio.models.dilated_ctc import DilatedCTC
from tfaudio.tasks.ctc import CTCTask, decode

import audio_files

GEOMETRY = ["audio_geometry.sample_rate = 8000", "audio_geometry.n_fft = 256", "audio_geometry.win_length = 256",
            "audio_geometry.hop_length = 80", "audio_geometry.n_mels = 20", "vocabulary.kind = 'transcript'"]


@pytest.fixture(autouse=True)
def geometry(_clear_gin):  # after conftest's clearing, which also clears afterwards
    gin.parse_config(GEOMETRY)


class Logits:
    """A stand-in model that returns fixed logits (one frame per 80 samples)."""

    def __init__(self, logits):
        self.logits = tf.constant(logits, tf.float32)

    def frames(self, samples):
        return samples // 80

    def __call__(self, audio, lengths, training=False):
        return self.logits


def batch_of(lengths_in_frames, label_ids):
    lengths = np.array(lengths_in_frames) * 80
    width = max(len(ids) for ids in label_ids)
    return {"audio": tf.zeros([len(lengths), int(lengths.max())]), "length": tf.constant(lengths, tf.int32),
            "text_ids": tf.constant([ids + [0] * (width - len(ids)) for ids in label_ids], tf.int32),
            "text_length": tf.constant([len(ids) for ids in label_ids], tf.int32)}


def test_transcript_vocabulary_keeps_letters_apostrophes_and_single_spaces():
    vocab = TranscriptVocabulary()
    ids = vocab.encode("Press 2, then the pound-key; it's Dr. Who!")
    assert vocab.decode(ids) == "press two then the pound key it's doctor who"
    assert 0 not in ids and vocab.symbols[0] == "_"


def test_receptive_field_counts_every_dilated_kernel():
    model = DilatedCTC(num_classes=29, kernel_size=3, max_dilation=4, num_stacks=2)
    assert model.dilations == [1, 2, 4, 1, 2, 4]
    assert model.receptive_field() == 1 + 2 * (1 + 2 + 4) * 2
    assert DilatedCTC(num_classes=29, kernel_size=5, max_dilation=64, num_stacks=3).receptive_field() == \
        1 + 4 * 127 * 3


def test_causal_model_output_ignores_the_future():
    keras.utils.set_random_seed(0)
    model = DilatedCTC(num_classes=29, channels=8, skip_channels=8, max_dilation=4, num_stacks=1, causal=True,
                       front_end="wave")
    x = np.random.default_rng(0).normal(0, 0.3, (1, 8000)).astype(np.float32)
    changed = x.copy()
    changed[:, 4000:] += 0.5
    a, b = (model(v, tf.constant([8000])).numpy() for v in (x, changed))
    assert np.allclose(a[:, :4000 // 80 - 1], b[:, :4000 // 80 - 1], atol=1e-6)  # frames before the change
    assert not np.allclose(a[:, 4000 // 80 + 1:], b[:, 4000 // 80 + 1:])


@pytest.mark.parametrize("front_end", ["log_mel", "wave"])
def test_a_padded_batch_gives_each_example_its_own_logits(front_end):
    keras.utils.set_random_seed(0)
    model = DilatedCTC(num_classes=29, channels=8, skip_channels=8, max_dilation=8, num_stacks=2,
                       front_end=front_end, batch_norm=True)
    rng = np.random.default_rng(0)
    lengths = [3000, 5123, 8000]
    waves = [rng.normal(0, 0.3, n).astype(np.float32) for n in lengths]
    padded = np.stack([np.pad(w, (0, 8000 - len(w))) for w in waves])
    model(padded, tf.constant(lengths), training=True)  # moves BatchNorm's statistics off their start
    together = model(padded, tf.constant(lengths)).numpy()
    for i, wave in enumerate(waves):
        alone = model(wave[None], tf.constant([len(wave)])).numpy()[0]
        frames = int(model.frames(lengths[i]))
        assert alone.shape[0] == frames
        np.testing.assert_allclose(together[i, :frames], alone, atol=1e-4)
        assert not together[i, frames:].any()


def test_ctc_loss_equals_the_hand_computed_probability():
    # Two frames, uniform over {blank, 'a'}: the paths of "a" are (a, a), (a, _), (_, a): p = 3/4.
    task = CTCTask()
    a = task.vocab.encode("a")[0]
    logits = np.full([1, 2, len(task.vocab)], -1e4, np.float32)
    logits[0, :, [0, a]] = 0.0
    loss, terms = task.loss(Logits(logits), batch_of([2], [[a]]), training=True)
    np.testing.assert_allclose(loss.numpy(), [-np.log(0.75)], rtol=1e-4)


def test_labels_longer_than_their_frames_are_counted_and_cost_nothing():
    task = CTCTask()
    a, b = task.vocab.encode("ab")
    logits = np.zeros([3, 3, len(task.vocab)], np.float32)
    # 3 frames carry "ab" and "aa" needs a blank between: 3 frames; "aaa" needs 5
    batch = batch_of([3, 3, 3], [[a, b], [a, a], [a, a, a]])
    loss, terms = task.loss(Logits(logits), batch, training=True)
    np.testing.assert_array_equal(terms["label_too_long"].numpy(), [0, 0, 1])
    assert loss.numpy()[2] == 0 and np.all(loss.numpy()[:2] > 0)


def one_hot_path(path: str, vocab) -> np.ndarray:
    """Logits whose argmax at each frame spells `path` ('_' the blank)."""
    ids = [0 if c == "_" else vocab.encode(c)[0] if c != " " else 1 for c in path]
    logits = np.full([len(ids), len(vocab)], -5.0, np.float32)
    logits[np.arange(len(ids)), ids] = 5.0
    return logits


def test_greedy_collapses_repeats_and_blanks_and_beam_search_sums_paths():
    vocab = TranscriptVocabulary()
    greedy = decode(one_hot_path("hh_e_ll_lo", vocab)[None], tf.constant([10]))
    assert vocab.decode(tf.sparse.to_dense(greedy)[0].numpy()) == "hello"
    # Per frame p(_) = .6, p(a) = .4: the best path is "__" (.36) but "a" has .64.
    a = vocab.encode("a")[0]
    logits = np.full([1, 2, len(vocab)], -1e4, np.float32)
    logits[0, :, 0], logits[0, :, a] = np.log(0.6), np.log(0.4)
    best_path = tf.sparse.to_dense(decode(logits, tf.constant([2]), beam_width=1)).numpy()
    best_label = tf.sparse.to_dense(decode(logits, tf.constant([2]), beam_width=4)).numpy()
    assert best_path.size == 0 and vocab.decode(best_label[0]) == "a"


def test_error_rates_are_corpus_level_edits_over_reference_lengths():
    task = CTCTask()
    vocab = task.vocab
    hypotheses = ["the bat", "a"]  # one character and one word wrong; then "b" read as "a"
    width = max(map(len, hypotheses))
    logits = np.stack([np.pad(one_hot_path(h, vocab), [(0, width - len(h)), (0, 0)]) for h in hypotheses])
    logits[1, 1:, 0] = 10.0  # blanks after "a"
    references = [vocab.encode("the cat"), vocab.encode("b")]
    batch = batch_of([width, width], references)
    values = task.metrics(Logits(logits), batch)  # the device part, then the host part, as the trainer runs them
    per_example = {k: v for k, v in values.items() if not k.startswith("host/")}
    per_example.update(task.host_metrics({k[len("host/"):]: v.numpy() for k, v in values.items()
                                          if k.startswith("host/")}))
    metrics = task.corpus_metrics({k: float(np.mean(v)) for k, v in per_example.items()})
    assert metrics["cer"] == pytest.approx((1 + 1) / (7 + 1))  # not the mean of 1/7 and 1/1
    assert metrics["wer"] == pytest.approx((1 + 1) / (2 + 1))


COMBINATIONS = list(itertools.product([2, 4], [1, 2], [True, False], [True, False]))


@pytest.mark.parametrize("max_dilation,num_stacks,padding,batch_norm", COMBINATIONS)
def test_every_architecture_switch_trains_two_steps(max_dilation, num_stacks, padding, batch_norm):
    keras.utils.set_random_seed(0)
    task = CTCTask(padding=padding)
    model = DilatedCTC(num_classes=len(task.vocab), channels=8, skip_channels=8, max_dilation=max_dilation,
                       num_stacks=num_stacks, batch_norm=batch_norm, front_end="wave" if padding else "log_mel")
    rng = np.random.default_rng(0)
    batch = batch_of([30, 22], [task.vocab.encode("one two"), task.vocab.encode("ten")])
    batch["audio"] = tf.constant(rng.normal(0, 0.3, batch["audio"].shape), tf.float32)
    optimizer = keras.optimizers.Adam(1e-2)

    def step():  # eager: tracing costs more than two steps of these small networks
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(task.loss(model, batch, training=True)[0])
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    losses = [float(step()) for _ in range(2)]
    assert all(np.isfinite(losses)) and losses[1] < losses[0]


@pytest.fixture(scope="module")
def ctc_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("ctc")
    data = audio_files.char_speech(str(root / "speech"), n=16)
    run = str(root / "run")
    config.parse(["gin/ctc_dilated_small.gin"],
                 [f"data_dir = '{data}'", "batch_size = 4", "train_steps = 4", "eval_every = 4",
                  "AudioData.val_fraction = 0.3", "DilatedCTC.channels = 8", "DilatedCTC.skip_channels = 8",
                  "max_dilation = 4", "num_stacks = 1"], finalize=False)
    trainer = training.train(run, tracker="none")[0]
    return run, trainer, data


def test_transcribe_prints_one_line_per_file_and_skips_bad_ones(ctc_run, tmp_path):
    run, trainer, data = ctc_run
    wave = audio_files.tone(0.6, 8000, 300)
    good = audio_files.write(str(tmp_path / "good.wav"), wave)
    other_rate = audio_files.write(str(tmp_path / "fast.wav"), audio_files.tone(0.6, 16000, 300), 16000)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....WAVEfmt garbage")
    cmd = [sys.executable, "-m", "tfaudio.transcribe", f"--model_dir={run}", "--beam_width=4", "--noema"]
    proc = subprocess.run(cmd + [f"--input={p}" for p in (good, other_rate, corrupt)], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 1
    lines = proc.stdout.strip().split("\n")
    assert len(lines) == 1 and lines[0].split("\t")[0] == good
    trainer.task.beam_width = 4
    assert lines[0].split("\t")[1] == trainer.task.transcribe(trainer.model, wave)
    assert "fast.wav is 16000 Hz" in proc.stderr and "corrupt.wav" in proc.stderr
    assert "2 of 3 files skipped" in proc.stderr
    folder = subprocess.run(cmd + [f"--input={os.path.join(data, 'wavs')}", "--resample"], capture_output=True,
                            text=True, timeout=300)
    assert folder.returncode == 0 and len(folder.stdout.strip().split("\n")) == 16


def test_validation_rows_carry_corpus_error_rates(ctc_run):
    run, trainer, _ = ctc_run
    from tfaudio.run_dir import read_metrics

    val = [r for r in read_metrics(run) if r.get("split") == "val"][-1]
    assert val["cer"] == pytest.approx(val["char_edits"] / val["chars"])
    model = [r for r in read_metrics(run) if r.get("event") == "model"][0]
    assert model["receptive_field_frames"] == 1 + 2 * (1 + 2 + 4) and model["frame_rate_hz"] == 100
    assert model["receptive_field_seconds"] == pytest.approx(0.15)
    assert 0 <= val["wer"] and "label_too_long" in val
