"""The alignment losses against brute force: the forward-sum (CTC) loss over every
monotonic path, the beta-binomial diagonal prior against its formula."""

import itertools
import math

import numpy as np
import pytest
import tensorflow as tf

from tfaudio.models.attention import diagonal_prior
from tfaudio.tasks.alignment import forward_sum_loss


def enumerated_forward_sum(log_attention, frames, symbols, blank_logit):
    """-log of the summed probability of every path over {blank, 1..symbols} of `frames`
    steps that collapses to 1..symbols, per frame."""
    logits = np.concatenate([np.full((frames, 1), blank_logit), log_attention[:frames, :symbols]], -1)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    total = 0.0
    for path in itertools.product(range(symbols + 1), repeat=frames):
        collapsed = [c for i, c in enumerate(path) if c != 0 and (i == 0 or path[i - 1] != c)]
        if collapsed == list(range(1, symbols + 1)):
            total += np.prod(probs[np.arange(frames), path])
    return -math.log(total) / frames


@pytest.mark.parametrize("dense", [False, True])
def test_forward_sum_loss_sums_every_monotonic_path(dense):
    rng = np.random.default_rng(0)
    frames, symbols = np.array([6, 4], np.int32), np.array([3, 2], np.int32)  # the second example is padded
    scores = rng.normal(size=(2, 6, 3)).astype(np.float32) * 2
    scores[1, :, 2] = -1e9  # a padded symbol, masked as the model masks it
    log_attention = tf.nn.log_softmax(scores, -1).numpy()
    loss = forward_sum_loss(tf.constant(log_attention), tf.constant(frames), tf.constant(symbols),
                            blank_logit=-1.0, dense=dense).numpy()
    expected = [enumerated_forward_sum(a, f, s, -1.0) for a, f, s in zip(log_attention, frames, symbols)]
    np.testing.assert_allclose(loss, expected, rtol=1e-4)


def test_diagonal_prior_rows_are_the_beta_binomial_and_follow_the_diagonal():
    frames, symbols, steps, width = np.array([8, 5]), np.array([4, 3]), 8, 4
    prior = diagonal_prior(tf.constant(frames), tf.constant(symbols), steps, width).numpy()
    for b, (total, count) in enumerate(zip(frames, symbols - 1)):
        for t in range(1, total + 1):
            a, c = t, total - t + 1
            beta = lambda x, y: math.gamma(x) * math.gamma(y) / math.gamma(x + y)  # noqa: E731
            pmf = [math.comb(count, n) * beta(n + a, count - n + c) / beta(a, c) for n in range(count + 1)]
            np.testing.assert_allclose(np.exp(prior[b, t - 1, :count + 1]), pmf, rtol=1e-4)
            assert sum(pmf) == pytest.approx(1.0)
        assert np.all(prior[b, total:] == 0) and np.all(prior[b, :, count + 1:] == 0)
        peaks = np.argmax(prior[b, :total, :count + 1], -1)
        assert peaks[0] == 0 and peaks[-1] == count and np.all(np.diff(peaks) >= 0)
