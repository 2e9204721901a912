"""Tacotron: text front end, model loop, alignment metrics, a tiny real training run
and synthesis from its checkpoint."""

import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from tfaudio import compose as training
from tfaudio import config
from tfaudio.data.text import CharVocabulary, TextError, normalize
from tfaudio.models.attention import Attention, DynamicConvolutionAttention, beta_binomial_filter
from tfaudio.models.tacotron import Tacotron
from tfaudio.run_dir import read_metrics
from tfaudio.tasks.alignment import alignment_metrics, guided_attention_weights

import audio_files


def test_normalize_spells_out_numbers_and_abbreviations():
    assert normalize("Dr. Smith paid $3.50 on May 3rd, 1984 (approx. 25% more).") == (
        "doctor smith paid three dollars and fifty cents on may third, nineteen eighty four, "
        "approximately twenty five percent more.")
    assert normalize("Press 1; or dial 12,345.") == "press one, or dial twelve thousand three hundred forty five."
    assert normalize("dollar [$]") == "dollar, dollar"  # asterisk's letters_dollar prompt
    assert normalize("The answer is no.") == "the answer is no."
    assert normalize("Main St. now.") == "main street now."
    assert normalize("No. 5 is on St. Mark's Pl. by Elm Dr.") == "number five is on saint mark's pl. by elm drive."


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed (make deb)")
def test_phoneme_vocabulary_speaks_the_normalised_text():
    from tfaudio.data.text import vocabulary

    phonemes = vocabulary(kind="phonemes")
    assert phonemes.decode(phonemes.encode("Press 1.")) == "pɹˈɛs wˌʌn."
    assert phonemes.decode(phonemes.encode("Is it no?")).endswith("nˈoʊ?")
    assert phonemes.encode("Press 1.")[-1] == phonemes.end_id and len(phonemes) == 55


def test_vocabulary_drops_or_rejects_unknown_characters():
    vocab = CharVocabulary(normalize_text=False)
    assert vocab.decode(vocab.encode("ab\u00e9c")) == "abc"
    assert vocab.encode("a")[-1] == vocab.end_id
    with pytest.raises(TextError, match="meta.csv:3: characters \\['\u00e9'\\]"):
        CharVocabulary(normalize_text=False, unknown="error").encode("ab\u00e9c", "meta.csv:3")


def test_alignment_metrics_tell_diagonal_from_scrambled():
    eye = tf.eye(8)[None]
    good = alignment_metrics(eye, tf.constant([8]), tf.constant([8]))
    assert float(good["focus_rate"][0]) == pytest.approx(1.0)
    assert float(good["diagonal_mass"][0]) == pytest.approx(1.0)
    assert float(good["monotone"][0]) == pytest.approx(1.0)
    reverse = alignment_metrics(eye[:, ::-1], tf.constant([8]), tf.constant([8]))
    assert float(reverse["monotone"][0]) == 0.0 and float(reverse["diagonal_mass"][0]) < 0.4


def test_guided_attention_has_real_weight():
    # Uniform attention over 40 characters for 100 decoder steps: summed over characters
    # and averaged over steps the penalty is O(1); averaged over all cells it would be 40x smaller.
    uniform = tf.fill([1, 100, 40], 1 / 40)
    w = guided_attention_weights(tf.constant([100]), tf.constant([40]), 100, 40, 0.2)
    per_step = float(tf.reduce_sum(uniform * w) / 100)
    assert per_step > 0.4
    diagonal = tf.one_hot(tf.range(100) * 40 // 100, 40)[None]
    assert float(tf.reduce_sum(diagonal * w) / 100) < 0.05


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


@pytest.mark.parametrize("location_filters,previous", [(0, False), (4, False), (4, True)])
def test_attention_energies_by_value_and_only_location_attention_reads_where_it_has_been(location_filters,
                                                                                         previous):
    """softmax(v . tanh(W_q q + keys + W_l conv(location)) + b) over unmasked characters,
    computed here from the layer's weights; the location term (Chorowski et al.) only when
    location_filters > 0, so only then does where attention has been change the weights.
    Its channels: the cumulative weights, or the previous step's and the cumulative ones."""
    layer = Attention(units=6, location_filters=location_filters, location_kernel=3)
    rng = np.random.default_rng(0)
    query, keys, memory = (rng.normal(size=s).astype(np.float32) for s in ((2, 5), (2, 7, 6), (2, 7, 4)))
    mask = np.arange(7)[None] < np.array([[7], [5]])
    # Two histories: (previous weights, cumulative weights) each.
    histories = [tuple(rng.uniform(size=(2, 7)).astype(np.float32) for _ in range(2)) for _ in range(2)]
    outputs = [layer(query, keys, memory, c, mask, previous=p if previous else None) for p, c in histories]
    for (p, c), (context, weights) in zip(histories, outputs):
        hidden = keys + (query @ layer.query.kernel.numpy())[:, None]
        if location_filters:
            features = np.stack([p, c], -1) if previous else c[..., None]
            kernel = layer.location_conv.kernel.numpy()  # [3, channels, filters]; "same": one zero each side
            padded = np.pad(features, [(0, 0), (1, 1), (0, 0)])
            conv = np.einsum("btkc,kcf->btf", np.stack([padded[:, j:j + 7] for j in range(3)], 2), kernel)
            hidden = hidden + conv @ layer.location_dense.kernel.numpy()
        energy = (np.tanh(hidden) @ layer.energy.kernel.numpy())[..., 0] + layer.energy.bias.numpy()
        energy = np.where(mask, energy, -np.inf)
        expected = np.exp(energy - energy.max(-1, keepdims=True))
        expected /= expected.sum(-1, keepdims=True)
        np.testing.assert_allclose(weights.numpy(), expected, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(context.numpy(), np.einsum("bn,bnd->bd", expected, memory), rtol=1e-4,
                                   atol=1e-6)
    moved = np.abs(outputs[0][1].numpy() - outputs[1][1].numpy()).max()
    assert (moved > 1e-3) if location_filters else (moved == 0.0)


def test_dynamic_convolution_attention_by_value_only_stays_or_moves_forward_within_its_prior():
    prior = np.array(beta_binomial_filter())  # BetaBinomial(10, 0.1, 0.9): mostly stay, some steps forward
    assert prior.shape == (11,) and prior.sum() == pytest.approx(1.0) and np.argmax(prior) == 0
    layer = DynamicConvolutionAttention(16)
    rng = np.random.default_rng(0)
    memory = tf.constant(rng.normal(size=(2, 30, 8)), tf.float32)
    query = tf.constant(rng.normal(size=(2, 12)), tf.float32)
    previous = tf.constant(0.7 * np.eye(30)[[3, 20]] + 0.3 * np.eye(30)[[4, 21]], tf.float32)
    mask = tf.sequence_mask([30, 26], 30)
    context, weights = layer(query, layer.keys(memory), memory, None, mask, previous=previous)

    def dense(x, d):
        return x @ d.kernel.numpy() + (d.bias.numpy() if d.use_bias else 0.0)
    prev = previous.numpy()
    window = np.stack([np.pad(prev, [[0, 0], [10, 10]])[:, k:k + 30] for k in range(21)], -1)  # [B, N, 21]
    filters = dense(np.tanh(dense(query.numpy(), layer.filter_net)), layer.dynamic).reshape(2, 8, 21)
    hidden = (dense(dense(window, layer.static), layer.static_dense)
              + dense(np.einsum("bnk,bfk->bnf", window, filters), layer.dynamic_dense))
    reach = sum(prior[k] * np.pad(prev, [[0, 0], [k, 0]])[:, :30] for k in range(11))  # prior[k] moves k ahead
    energies = dense(np.tanh(hidden), layer.energy)[..., 0] + np.log(np.maximum(reach, 1e-6))
    energies = np.where(mask.numpy(), energies, -1e9)
    expected = np.exp(energies - energies.max(-1, keepdims=True))
    expected /= expected.sum(-1, keepdims=True)
    np.testing.assert_allclose(weights, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(context, np.einsum("bn,bnd->bd", expected, memory.numpy()), rtol=1e-4, atol=1e-5)
    w = weights.numpy()  # from symbols 3-4 and 20-21: nothing behind them or past 10 ahead
    assert w[0, 3:15].sum() > 1 - 1e-4 and w[1, 20:26].sum() > 1 - 1e-4  # the second's text ends at 26


def test_spectrum_stop_token_and_tacotron1_linear_losses_by_value():
    """The attention Tacotron's loss terms against their formulas: L1 over valid frames, the
    linear loss with Tacotron 1's low-frequency priority, the stop token's weighted
    cross-entropy (target 1 from the last decoder step of the recording on) and the guided
    attention term, summed with their weights."""
    from tfaudio.tasks.tts import TacotronTask

    task = TacotronTask(priority_hz=1000.0, priority_weight=0.5, stop_weight=2.0, stop_pos_weight=5.0,
                        guided_weight=0.5)
    rng = np.random.default_rng(1)
    bins, steps, r = task.geometry.n_bins, 4, 2
    frames, text_length = np.array([8, 5], np.int32), np.array([3, 2], np.int32)
    mask = np.arange(steps * r)[None] < frames[:, None]
    out = {"mel": rng.normal(size=(2, 8, 3)), "mel_post": rng.normal(size=(2, 8, 3)),
           "linear": rng.normal(size=(2, 8, bins)), "stop_logits": rng.normal(size=(2, steps)),
           "alignments": rng.dirichlet(np.ones(3), size=(2, steps))}
    mel, linear = rng.normal(size=(2, 8, 3)), rng.normal(size=(2, 8, bins))
    total, terms, _ = task._terms({k: tf.constant(v, tf.float32) for k, v in out.items()},
                                  tf.constant(mel, tf.float32), tf.constant(linear, tf.float32),
                                  tf.constant(frames), tf.constant(mask), tf.constant(text_length), r)

    def l1(a, b):
        return np.array([np.abs(a[i] - b[i])[mask[i]].mean() for i in range(2)])
    low = int(1000.0 / (task.geometry.sample_rate / 2) * bins)
    expected = {"mel": l1(out["mel"], mel), "mel_post": l1(out["mel_post"], mel),
                "linear": 0.5 * l1(out["linear"], linear) + 0.5 * l1(out["linear"][..., :low], linear[..., :low])}
    last = -(-frames // r) - 1  # the decoder step that holds the recording's last frame
    target = (np.arange(steps)[None] >= last[:, None]).astype(float)
    p = _sigmoid(out["stop_logits"])
    expected["stop"] = np.mean(-5.0 * target * np.log(p) - (1 - target) * np.log(1 - p), 1)
    guide = guided_attention_weights(tf.constant(last + 1), tf.constant(text_length), steps, 3, task.guided_sigma)
    expected["guided"] = np.sum(out["alignments"] * guide.numpy(), (1, 2)) / (last + 1)
    assert 1 <= low < bins and sorted(terms) == sorted(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(terms[name].numpy(), value, rtol=1e-5, err_msg=name)
    np.testing.assert_allclose(total.numpy(), expected["mel"] + expected["mel_post"] + expected["linear"]
                               + 2.0 * expected["stop"] + 0.5 * expected["guided"], rtol=1e-5)



def test_forward_sum_on_the_attention_prefers_a_monotonic_path_and_spares_a_decoder_shorter_than_its_text():
    """TacotronTask.forward_sum_weight adds the forward-sum loss of the attention weights
    (decoder steps against characters): off by default; lower for attention that walks
    the text in order than for attention that walks it backwards; 0, with finite
    gradients, for an example whose decoder is shorter than its text."""
    from tfaudio.tasks.alignment import forward_sum_loss
    from tfaudio.tasks.tts import TacotronTask

    steps, chars = 6, 3
    forward = np.eye(chars)[np.arange(steps) * chars // steps]  # characters 0 0 1 1 2 2
    smooth = 0.9 * forward + 0.1 / chars
    alignments = tf.Variable(np.stack([smooth, smooth[:, ::-1], smooth]), dtype=tf.float32)
    frames, text_length = tf.constant([6, 6, 2]), tf.constant([3, 3, 3])  # r = 1: a decoder step per frame
    mask = tf.sequence_mask(frames, steps)
    zeros = tf.zeros([3, steps, 2])
    out = {"mel": zeros, "mel_post": zeros, "stop_logits": tf.zeros([3, steps]), "alignments": alignments}

    def terms_of(weight):
        with tf.GradientTape() as tape:
            total, terms, _ = TacotronTask(forward_sum_weight=weight)._terms(out, zeros, None, frames, mask,
                                                                               text_length, 1)
        return total, terms, tape.gradient(total, alignments)

    plain, terms, _ = terms_of(0.0)
    assert "forward_sum" not in terms
    total, terms, grad = terms_of(0.5)
    paths = terms["forward_sum"].numpy()
    assert paths[0] < paths[1] and paths[2] == 0.0 and np.all(np.isfinite(grad.numpy()))
    expected = forward_sum_loss(tf.math.log(alignments[:1]), tf.constant([6]), tf.constant([3]))
    np.testing.assert_allclose(paths[0], expected.numpy()[0], rtol=1e-5)
    np.testing.assert_allclose(total.numpy(), plain.numpy() + 0.5 * paths, rtol=1e-5)


def test_double_decoder_consistency_adds_a_coarse_decoder_its_loss_and_the_alignment_distance():
    """Tacotron.coarse_reduction: a second decoder at r = 4 beside the main one at r = 2,
    teacher-forced on the targets padded to its r; TacotronTask adds its mel loss and the
    alignment distance (by value on a hand-made case) at ddc_weight; synthesis is the main
    decoder's alone."""
    from tfaudio.models import weights
    from tfaudio.tasks.alignment import decoder_consistency
    from tfaudio.tasks.tts import TacotronTask

    fine = tf.one_hot([[0, 0, 1, 2]], 3)  # four fine steps on characters 0 0 1 2
    coarse = tf.one_hot([[0, 1]], 3)  # two coarse steps, stretched to 0 0 1 1: step 3 differs by 2
    np.testing.assert_allclose(decoder_consistency(fine, coarse, tf.constant([4])), [2 / 4])
    np.testing.assert_allclose(decoder_consistency(fine, coarse, tf.constant([3])), [0.0])

    inputs = {"text_ids": tf.constant([[3, 4, 5, 1], [6, 7, 1, 0]]), "text_length": tf.constant([4, 3]),
              "go_frame": tf.zeros([8]), "targets": tf.random.stateless_normal([2, 10, 8], [5, 6]),
              "frames": tf.constant([10, 7])}
    model = _tiny_model(prenet_dropout=0.0, coarse_reduction=4)
    with tf.GradientTape() as tape:
        out = model(inputs, training=True)
        mask = tf.sequence_mask(inputs["frames"], 10)
        terms_of = {w: TacotronTask(ddc_weight=w)._terms(out, inputs["targets"], None, inputs["frames"], mask,
                                                          inputs["text_length"], 2) for w in (0.0, 0.5)}
        total = tf.reduce_sum(terms_of[0.5][0])
    assert out["coarse_mel"].shape == (2, 10, 8) and out["coarse_alignments"].shape == (2, 3, 4)  # 12 / 4 steps
    terms = terms_of[0.5][1]
    np.testing.assert_allclose(terms["ddc"], decoder_consistency(out["alignments"], out["coarse_alignments"],
                                                                 tf.constant([5, 4])), rtol=1e-6)
    np.testing.assert_allclose(terms_of[0.5][0] - terms_of[0.0][0], 0.5 * (terms["coarse_mel"] + terms["ddc"]),
                               rtol=1e-5, atol=1e-6)
    coarse = {n: v for n, v in weights.named_variables(model).items() if n.startswith("coarse/") and v.trainable}
    grads = dict(zip(coarse, tape.gradient(total, list(coarse.values()))))
    # Every coarse layer learns from the two terms but its stop projection (no stop loss).
    assert {n for n, g in grads.items() if g is None} == {n for n in coarse if n.startswith("coarse/stop_projection/")}
    assert all(float(tf.reduce_max(tf.abs(grads[n]))) > 0 for n in coarse if "rnn" in n or "frame_projection" in n)
    coarse_vars = list(coarse.values())
    synthesis = model.infer(inputs["text_ids"], inputs["text_length"], tf.zeros([8]), tf.constant(4), 1.1)["mel"]
    for v in coarse_vars:
        v.assign(tf.zeros_like(v))
    again = model.infer(inputs["text_ids"], inputs["text_length"], tf.zeros([8]), tf.constant(4), 1.1)["mel"]
    np.testing.assert_allclose(again, synthesis)


def test_the_attention_prior_pulls_teacher_forced_attention_onto_the_diagonal_and_leaves_free_running_alone():
    """Tacotron.attention_prior: an untrained model's teacher-forced attention, spread
    nearly evenly, lies near the diagonal and reaches the last character with the
    beta-binomial prior; free-running decoding (which cannot know the length) is the
    same with or without it."""
    from tfaudio.tasks.alignment import alignment_metrics

    rng = np.random.default_rng(0)
    inputs = {"text_ids": tf.constant(rng.integers(1, 30, (2, 7)), tf.int32), "text_length": tf.constant([7, 5]),
              "go_frame": tf.zeros([8]), "targets": tf.constant(rng.normal(size=(2, 24, 8)), tf.float32),
              "frames": tf.constant([24, 16])}
    metrics, free = {}, {}
    for prior in (False, True):
        keras.utils.set_random_seed(0)  # the same weights
        model = _tiny_model(attention_prior=prior, prenet_dropout=0.0)
        out = model(inputs)
        metrics[prior] = alignment_metrics(out["alignments"], tf.constant([12, 8]), inputs["text_length"])
        free[prior] = model.infer(inputs["text_ids"], inputs["text_length"], inputs["go_frame"], 10)["alignments"]
    assert np.all(metrics[True]["diagonal_mass"].numpy() > 0.6) and np.all(metrics[True]["coverage"].numpy() == 1)
    assert np.all(metrics[False]["diagonal_mass"].numpy() < 0.45)
    np.testing.assert_array_equal(free[True].numpy(), free[False].numpy())

def _tiny_model(**kwargs):
    args = dict(vocab_size=35, n_mels=8, n_linear=17, embedding_dim=16, conv_layers=1, conv_channels=16,
                encoder_units=8, attention_units=8, location_filters=4, location_kernel=5,
                prenet_units=(16, 8), attention_rnn_units=16, decoder_rnn_units=16, reduction=2,
                postnet_layers=2, postnet_channels=8, encoder_bank_size=3, linear_bank_size=2)
    args.update(kwargs)
    return Tacotron(**args)


@pytest.mark.parametrize("encoder,linear,features", [("conv", "none", "cumulative"), ("cbhg", "cbhg", "cumulative"),
                                                     ("conv", "none", "both"), ("conv", "none", "dynamic")])
def test_teacher_forced_shapes_and_traced_free_running(encoder, linear, features):
    kind = "dynamic" if features == "dynamic" else "location"
    model = _tiny_model(encoder=encoder, linear_postnet=linear, attention_kind=kind,
                        location_features="cumulative" if kind == "dynamic" else features)
    ids = tf.constant([[3, 4, 5, 1, 0], [6, 7, 8, 9, 1]])
    length = tf.constant([4, 5])
    out = model({"text_ids": ids, "text_length": length, "go_frame": tf.zeros([8]),
                 "targets": tf.zeros([2, 14, 8])}, training=True)
    assert out["mel"].shape == (2, 14, 8) and out["mel_post"].shape == (2, 14, 8)
    assert out["alignments"].shape == (2, 7, 5) and out["stop_logits"].shape == (2, 7)
    assert ("linear" in out) == (linear == "cbhg")
    if encoder == "cbhg":  # convolution widths 1..3 and 1..2
        assert [c.conv.kernel.shape[0] for c in model.encoder.cbhg.bank] == [1, 2, 3]
        assert [c.conv.kernel.shape[0] for c in model.linear_cbhg.bank] == [1, 2]
    np.testing.assert_allclose(tf.reduce_sum(out["alignments"], -1), 1.0, rtol=1e-5)
    assert float(tf.reduce_max(out["alignments"][0, :, 4])) < 1e-6  # padded character masked
    if kind == "location":  # the location filters read the cumulative weights, or the previous step's beside them
        assert model.attention.location_conv.kernel.shape[1] == (2 if features == "both" else 1)
    else:
        assert isinstance(model.attention, DynamicConvolutionAttention)

    infer = tf.function(model.infer)  # the loop is a graph loop, traced once for any bound
    free = infer(ids, length, tf.zeros([8]), tf.constant(6))
    assert free["mel"].shape[0] == 2 and free["mel"].shape[1] <= 12
    assert np.all(free["steps"].numpy() <= 6)
    a = infer(ids, length, tf.ones([8]), tf.constant(6), 1.1)["mel"]  # threshold 1.1: never stops
    b = infer(ids, length, tf.ones([8]), tf.constant(6), 1.1)["mel"]
    assert a.shape == (2, 12, 8)
    assert not np.allclose(a, b)  # the prenet's dropout stays on at inference
    windowed = model.infer(ids, length, tf.ones([8]), tf.constant(8), 1.1, None, 1)
    moves = np.diff(np.argmax(windowed["alignments"].numpy(), -1), axis=1)
    assert moves.min() >= -1 and moves.max() <= 1  # attention stays within the window


def test_decoder_dropout_drops_the_lstm_outputs_and_carried_state_in_training_only():
    """Tacotron.decoder_dropout: in training, about that share of each decoder LSTM's
    output is zeroed (the rest scaled up) and the next step carries the dropped output as
    its state; inference equals the same weights without the dropout."""
    inputs = {"text_ids": tf.constant([[3, 4, 5, 1]]), "text_length": tf.constant([4]), "go_frame": tf.zeros([8]),
              "targets": tf.random.stateless_normal([1, 10, 8], seed=[0, 1])}
    models = {rate: _tiny_model(prenet_dropout=0.0, decoder_dropout=rate) for rate in (0.0, 0.5)}
    for model in models.values():
        model(inputs)
    for plain, dropped in zip(models[0.0].trainable_variables, models[0.5].trainable_variables):
        dropped.assign(plain)  # the same weights
    mels = {rate: model(inputs)["mel"].numpy() for rate, model in models.items()}
    np.testing.assert_allclose(mels[0.5], mels[0.0], rtol=1e-6)

    h, c = tf.ones([8, 100]), tf.fill([8, 100], 3.0)
    out, (carried_h, carried_c) = models[0.5]._dropped(h, [h, c], training=True)
    kept = out.numpy() != 0
    assert 0.4 < kept.mean() < 0.6 and np.all(out.numpy()[kept] == 2.0)
    assert carried_h is out and carried_c is c
    assert models[0.5]._dropped(h, [h, c], training=False)[0] is h
    for rate, model in models.items():  # a decoder step drops both LSTMs' outputs
        memory = tf.random.stateless_normal([1, 4, 16], seed=[0, 2])
        state = model._step(model.prenet(tf.ones([1, 8])), model._initial_state(memory, model),
                            model.attention.keys(memory), memory, tf.ones([1, 4], bool), True)[-1]
        zeros = [int(np.sum(state[rnn][0].numpy() == 0)) for rnn in ("att", "dec")]
        assert all(zeros) if rate else not any(zeros), (rate, zeros)


@pytest.mark.parametrize("sampling", [0.0, 1.0])
def test_scheduled_sampling_feeds_the_models_own_frames(sampling):
    """Teacher-forced training reads the target frames; with scheduled sampling 1 it reads
    none (each step's input is the model's own last frame)."""
    model = _tiny_model(prenet_dropout=0.0)
    memory, mask = model.encode(tf.constant([[3, 4, 5, 6]]), tf.constant([4]), False)
    targets = tf.random.stateless_normal([1, 12, 8], [1, 2])
    changed = tf.concat([targets[:, :6], targets[:, 6:] + 3.0], 1)  # frames 7 and 9: inputs of steps 4, 5
    # The decoder loop as training runs it (sampling on), without the training-time dropout.
    a, b = (model._decode(memory, mask, tf.zeros([8]), 6, t, sampling, training=False)[0].numpy()[0]
            for t in (targets, changed))
    moved = np.flatnonzero(np.abs(a - b).max(-1) > 1e-6)
    if sampling == 0.0:  # each step reads the last target frame of the step before (r = 2)
        assert moved.tolist() == list(range(8, 12))
    else:
        assert moved.tolist() == []


def test_teacher_forcing_runs_the_prenet_outside_the_loop_to_the_same_result(monkeypatch):
    """Teacher-forced, the prenet runs once on every step's input before the decoder loop;
    a scheduled-sampling rate too small to ever sample takes the step-by-step path: the
    same frames, stop logits, alignments and gradients."""
    model = _tiny_model(prenet_dropout=0.0)
    memory, mask = model.encode(tf.constant([[3, 4, 5, 6], [7, 8, 1, 0]]), tf.constant([4, 3]), False)
    targets = tf.random.stateless_normal([2, 12, 8], [3, 4])
    model.prenet(tf.zeros([1, 8]))  # built: its first call also traces it once for its shapes
    prenet_calls = []
    prenet_call = type(model.prenet).call
    monkeypatch.setattr(type(model.prenet), "call", lambda self, x: prenet_calls.append(1) or prenet_call(self, x))

    def decode(sampling):
        del prenet_calls[:]
        with tf.GradientTape() as tape:
            frames, stop, alignments, _, _ = model._decode(memory, mask, tf.zeros([8]), 6, targets, sampling)
            loss = tf.reduce_sum(frames ** 2) + tf.reduce_sum(stop) + tf.reduce_sum(alignments * tf.range(4.0))
        grads = tape.gradient(loss, model.trainable_variables)
        return [frames, stop, alignments], [g for g in grads if g is not None], len(prenet_calls)

    (hoisted, hoisted_grads, hoisted_calls), (stepped, stepped_grads, stepped_calls) = decode(0.0), decode(1e-12)
    assert (hoisted_calls, stepped_calls) == (1, 6)
    assert len(hoisted_grads) == len(stepped_grads) > 0
    for a, b in zip(hoisted + hoisted_grads, stepped + stepped_grads):
        np.testing.assert_allclose(tf.convert_to_tensor(a), tf.convert_to_tensor(b), rtol=1e-5, atol=1e-6)


def test_end_margin_is_its_seconds_in_decoder_steps():
    from tfaudio.tasks.tts import TacotronTask

    config.parse([os.path.join(config.REPO_GIN_DIR, "tacotron_8khz_attention.gin")], [], finalize=False)
    task = TacotronTask()
    model = _tiny_model(vocab_size=len(task.vocabulary.symbols), n_mels=task.geometry.n_mels, reduction=4)
    assert task.end_margin(model) == 3  # 0.15 s at 8 kHz, hop 100, 4 frames per decoder step


def test_synthesis_decodes_with_the_end_fallback_and_window_and_the_free_metrics_without():
    from tfaudio.models.duration_tacotron import DurationTacotron
    from tfaudio.tasks.tts import TacotronTask

    config.parse([os.path.join(config.REPO_GIN_DIR, "tacotron_8khz_attention.gin")],
                 ["TacotronTask.stop_threshold = 1.1", "TacotronTask.window = 1"], finalize=False)
    task = TacotronTask()
    model = _tiny_model(vocab_size=len(task.vocabulary.symbols), n_mels=task.geometry.n_mels, reduction=4,
                        prenet_dropout=0.0)
    assert sorted(task.decoding(model, synthesis=False)) == ["go_frame", "stop_threshold"]
    ids, length = tf.constant([[3, 4, 5, 6, 7, 8]]), tf.constant([6])
    out = task.infer(model, ids, length, 12)
    wanted = model.infer(ids, length, task.spectra.go_frame, tf.constant(12), stop_threshold=1.1, end_margin=3,
                         window=1)
    for key in ("mel_post", "alignments", "steps", "ended_by"):
        np.testing.assert_allclose(out[key].numpy(), wanted[key].numpy(), atol=1e-6, err_msg=key)
    durations = DurationTacotron(vocab_size=10, n_mels=8)
    assert task.decoding(durations, synthesis=True) == {}


@pytest.mark.parametrize("peaks,ended_by,steps", [
    (list(range(10)) + [9] * 20, "end of text", 10 + 3),  # covers the text: ends 3 steps after the last character
    ([0, 5, 9] + [9] * 27, "max-steps bound", 30),  # reaches the end having skipped 7 of 10 characters
    ([0, 1, 2, 3, 4, 5, 6, 7] + [7] * 22, "max-steps bound", 30)])  # never reaches the last character
def test_synthesis_ends_by_end_of_text_only_once_the_attention_covered_the_text(monkeypatch, peaks, ended_by, steps):
    """The end-of-text rule on scripted attention (the stop token never fires): a model
    whose attention jumps to the end, as an untrained one can, does not claim to be done."""
    from tfaudio.models.tacotron import ENDED_BY

    model = _tiny_model(vocab_size=20)
    script = iter(peaks)
    step = model._step

    def scripted(*args):
        out, weights, state = step(*args)
        return out, tf.one_hot([next(script)], 10), state
    monkeypatch.setattr(model, "_step", scripted)
    out = model.infer(tf.range(2, 12)[None], tf.constant([10]), tf.zeros([8]), tf.constant(30),
                      stop_threshold=1.1, end_margin=3)
    assert ENDED_BY[int(out["ended_by"][0])] == ended_by and int(out["steps"][0]) == steps


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """Tiny Tacotron, 64 utterances, 200 steps on CPU."""
    root = tmp_path_factory.mktemp("tts")
    data = audio_files.char_speech(str(root / "chars"), n=64)
    gin_file = os.path.join(config.REPO_GIN_DIR, "tacotron_8khz_attention.gin")
    config.parse([gin_file], [
        f"data_dir = '{data}'", "train_steps = 200", "eval_every = 100", "batch_size = 8",
        "learning_rate = 3e-3", "LearningRate.warmup_steps = 20", "AudioData.max_seconds = 2.0",
        "AudioData.val_fraction = 0.1", "Tacotron.embedding_dim = 32", "Tacotron.conv_channels = 32",
        "Tacotron.encoder_units = 16", "Tacotron.attention_units = 16", "Tacotron.prenet_units = (32, 32)",
        "Tacotron.attention_rnn_units = 64", "Tacotron.decoder_rnn_units = 64",
        "Tacotron.postnet_channels = 32", "TacotronTask.max_decoder_steps = 40",
        "TacotronTask.griffin_lim_iterations = 8", "Trainer.steps_per_loop = 20"], finalize=False)
    run = str(root / "run")
    training.train(run)
    return run


def test_tiny_training_run_learns(trained_run):
    rows = read_metrics(trained_run)
    train = [r for r in rows if "split" not in r and "event" not in r]
    assert train[-1]["loss"] < 0.6 * train[0]["loss"]
    assert all(np.isfinite(r["loss"]) for r in train)
    val = [r for r in rows if r.get("split") == "val"]
    # The attention aligns (at step 100 of a run measured on 2 cores: diagonal mass 0.62,
    # focus 0.30, free-running aligned on 1 of 5; at step 200: 0.91, 0.48, 5 of 5).
    first, last = val[0], val[-1]
    assert last["diagonal_mass"] > 0.8 and last["focus_rate"] > first["focus_rate"] + 0.1
    assert last["free_aligned"] >= 0.8 and last["free_stopped"] >= 0.8 and last["guided"] < first["guided"]
    assert os.path.isfile(os.path.join(trained_run, "feature_stats.json"))
    assert os.listdir(os.path.join(trained_run, "tensorboard"))


def test_synthesize_cli_writes_audio_and_alignment(trained_run, tmp_path):
    out = tmp_path / "speech.wav"
    proc = subprocess.run([sys.executable, "-m", "tfaudio.synthesize", f"--model_dir={trained_run}",
                           "--text=Press one.", f"--output={out}", "--max_steps=30"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    wave, rate = sf.read(str(out))
    assert rate == 8000 and len(wave) > 0 and np.all(np.isfinite(wave))
    assert os.path.isfile(tmp_path / "speech.png")
    assert any(f"ended by the {rule})" in proc.stdout for rule in ("stop token", "end of text", "max-steps bound"))


def test_synthesize_refuses_text_the_vocabulary_cannot_read(trained_run, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tfaudio.synthesize", f"--model_dir={trained_run}",
                           "--text=数字", f"--output={tmp_path / 'o.wav'}"],
                          capture_output=True, text=True, timeout=300)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1 and "has no character the model reads" in errors[0]
    assert not (tmp_path / "o.wav").exists()


def test_synthesize_without_checkpoint_is_one_clear_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tfaudio.synthesize", f"--model_dir={tmp_path}",
                           "--text=hi"], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "no operative_config.gin" in proc.stderr and "Traceback" not in proc.stderr


def test_normalisation_stats_travel_with_the_checkpoint(trained_run):
    import json

    from tfaudio.experiment import restore_for_inference

    saved = json.load(open(os.path.join(trained_run, "feature_stats.json")))
    _, task = restore_for_inference(trained_run)
    np.testing.assert_allclose(task.state.mel.mean.numpy(), saved["mel"]["mean"], atol=1e-5)
    np.testing.assert_allclose(task.state.mel.std.numpy(), saved["mel"]["std"], atol=1e-5)
    assert np.abs(task.state.mel.mean.numpy()).max() > 0.1  # real statistics, not the defaults
