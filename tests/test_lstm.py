"""SequenceLSTM computes what Keras's LSTM computes with the same weights, in both
directions, and continues from a carried state as one call over the whole sequence; on a
GPU it hands cuDNN the parameters Keras's LSTM hands it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfaudio.models.lstm import SequenceLSTM, cudnn_params


def keras_twin(layer: SequenceLSTM, direction: int) -> keras.layers.LSTM:
    """A Keras LSTM holding `direction`'s weights of `layer` (the two biases summed)."""
    twin = keras.layers.LSTM(layer.units, return_sequences=True, return_state=True)
    twin.build((None, None, layer.kernel.shape[1]))
    twin.set_weights([layer.kernel[direction].numpy(), layer.recurrent_kernel[direction].numpy(),
                      (layer.bias[direction] + layer.recurrent_bias[direction]).numpy()])
    return twin


@pytest.mark.parametrize("training", [False, True], ids=["inference", "training"])
@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_equals_keras_lstm_with_the_same_weights(bidirectional, training):
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(3, 7, 5)), tf.float32)
    layer = SequenceLSTM(4, bidirectional=bidirectional)
    layer(x)
    for weight in layer.weights:  # non-zero biases, so each of the two must count
        weight.assign(rng.normal(scale=0.5, size=weight.shape))
    out = layer(x, training=training).numpy()
    forward = keras_twin(layer, 0)(x)[0].numpy()
    np.testing.assert_allclose(out[..., :4], forward, atol=1e-5)
    if bidirectional:
        backward = keras_twin(layer, 1)(tf.reverse(x, [1]))[0].numpy()[:, ::-1]
        np.testing.assert_allclose(out[..., 4:], backward, atol=1e-5)
    assert out.shape == (3, 7, 4 * (2 if bidirectional else 1))


def test_a_carried_state_continues_the_sequence():
    x = tf.random.normal([2, 9, 3], seed=1)
    layer = SequenceLSTM(6)
    whole = layer(x).numpy()
    first, state = layer(x[:, :4], return_state=True)
    second, _ = layer(x[:, 4:], initial_state=state, return_state=True)
    np.testing.assert_allclose(np.concatenate([first, second], 1), whole, atol=1e-6)


@pytest.mark.parametrize("bidirectional", [False, True], ids=["uni", "bi"])
def test_the_written_out_backward_pass_equals_autodiff(bidirectional):
    """Training runs the loop with a hand-written gradient; inference the plain loop, which
    autodiff differentiates: every gradient (weights, input, initial state) must agree."""
    rng = np.random.default_rng(1)
    x = tf.constant(rng.normal(size=(2, 6, 5)), tf.float32)
    layer = SequenceLSTM(3, bidirectional=bidirectional)
    layer(x)
    for weight in layer.weights:
        weight.assign(rng.normal(scale=0.5, size=weight.shape))
    directions = 2 if bidirectional else 1
    state = tuple(tf.constant(rng.normal(size=(directions, 2, 3)), tf.float32) for _ in range(2))
    probe = tf.constant(rng.normal(size=(2, 6, 3 * directions)), tf.float32)

    def gradients(training):
        with tf.GradientTape() as tape:
            tape.watch([x, *state])
            out, (h, c) = layer(x, initial_state=state, return_state=True, training=training)
            loss = tf.reduce_sum(out * probe) + tf.reduce_sum(tf.square(h)) + tf.reduce_sum(c)
        return tape.gradient(loss, [x, *state, *layer.trainable_variables])

    for written, autodiff in zip(gradients(True), gradients(False)):
        np.testing.assert_allclose(written.numpy(), autodiff.numpy(), rtol=1e-4, atol=1e-5)


def test_the_cudnn_parameters_are_those_keras_lstm_hands_cudnn_on_a_gpu():
    """No GPU here: the cuDNN path is checked through its parameters. Keras's LSTM runs
    cuDNN on a GPU with this packing (and equals SequenceLSTM above on the CPU); cuDNN adds
    the input and recurrent biases, so only their sum must agree."""
    from keras.src.backend.tensorflow.rnn import _standardize_cudnn_weights

    rng = np.random.default_rng(2)
    layer = SequenceLSTM(3, bidirectional=True)
    layer(tf.zeros([1, 2, 5]))
    for weight in layer.weights:
        weight.assign(rng.normal(size=weight.shape))
    for d in range(2):
        kernel, recurrent = layer.kernel[d], layer.recurrent_kernel[d]
        bias, recurrent_bias = layer.bias[d], layer.recurrent_bias[d]
        summed = bias + recurrent_bias
        keras_params = _standardize_cudnn_weights(
            tf.split(kernel, 4, axis=1) + tf.split(recurrent, 4, axis=1),
            tf.split(tf.concat([tf.zeros_like(summed), summed], 0), 8), tf.constant([-1]), transpose_weights=True)
        np.testing.assert_allclose(cudnn_params(kernel, recurrent, tf.zeros_like(summed), summed), keras_params)
        ours = cudnn_params(kernel, recurrent, bias, recurrent_bias).numpy()
        np.testing.assert_allclose(ours[:-24], keras_params[:-24])  # the gate matrices
        np.testing.assert_allclose(ours[-24:-12] + ours[-12:], summed, rtol=1e-6)  # input + recurrent biases
