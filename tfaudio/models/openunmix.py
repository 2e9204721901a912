"""Open-Unmix: an LSTM separator that masks the mixture's magnitude spectrogram
(Stöter et al., 2019), in Keras 3.

mixture [B, samples] (mono) or [B, samples, channels]
  -> magnitude STFT of each channel, cropped to `max_bin` (the `bandwidth` in Hz)
  -> (x + input_mean) * input_scale            learned, initialised from training data
  -> dense without bias + BatchNorm + tanh     channels x max_bin -> hidden_size
  -> `nb_layers` LSTMs (bidirectional: hidden_size / 2 per direction), dropout between
  -> concatenate the LSTM stack's input and output (skip connection)
  -> dense + BatchNorm + ReLU, dense + BatchNorm back to channels x all bins
  -> x * output_scale + output_mean, ReLU: a mask times the mixture magnitude
  -> inverse STFT with the mixture's phase -> target estimate, shaped like the mixture;
     at inference optionally after `wiener_iterations` of the multichannel Wiener
     post-filter over the target and the residual (tfaudio.audio.wiener).

`target_magnitude` gives the masked magnitude the MSE loss compares
(tfaudio.tasks.separation.MaskSeparationTask); the STFT framing is `audio_geometry`.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from tfaudio.audio import features
from tfaudio.audio.geometry import audio_geometry
from tfaudio.audio.wiener import wiener
from tfaudio.errors import ConfigError
from tfaudio.limits import COUNT, NYQUIST, POSITIVE_INT, RATE, Range, Rule, limits
from tfaudio.models.building import BuiltByCall
from tfaudio.models.lstm import SequenceLSTM
from tfaudio.models.tracing import traced_method


def bandwidth_to_max_bin(sample_rate: int, n_fft: int, bandwidth: float) -> int:
    """Bins kept by the bandwidth crop: every bin whose centre frequency is <= bandwidth."""
    freqs = np.linspace(0, sample_rate / 2, n_fft // 2 + 1, endpoint=True)
    return int(np.max(np.where(freqs <= bandwidth)[0])) + 1


@limits(channels=POSITIVE_INT, hidden_size=Rule(lambda n: n >= 2 and n % 2 == 0, "a positive even integer", [7, 0]),
        nb_layers=POSITIVE_INT, bandwidth=Range(0, NYQUIST, low_open=True, none=True), dropout=RATE,
        wiener_iterations=COUNT)
class OpenUnmix(BuiltByCall, keras.Model):
    """Args:
      channels: audio channels (1 mono, 2 stereo); the mixture's last axis when 2-D.
      hidden_size: width of the dense layers and of the LSTM output.
      nb_layers: stacked LSTMs.
      unidirectional: causal LSTMs of hidden_size (real-time); else bidirectional,
        hidden_size / 2 per direction.
      bandwidth: Hz kept at the input, at most Nyquist (None: all; the output always
        covers every bin).
      dropout: between LSTM layers (when nb_layers > 1).
      wiener_iterations: EM iterations of the Wiener post-filter at inference (0: the
        mask with the mixture's phase). Offline only: it estimates spatial covariances
        over the whole input, so streaming ignores it.
    """

    def __init__(self, channels: int = 1, hidden_size: int = 512, nb_layers: int = 3,
                 unidirectional: bool = False, bandwidth: float | None = None, dropout: float = 0.4,
                 wiener_iterations: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.wiener_iterations = wiener_iterations
        self.geometry = audio_geometry()
        self.channels, self.unidirectional = channels, unidirectional
        self.nb_bins = self.geometry.n_fft // 2 + 1
        self.max_bin = self.nb_bins if bandwidth is None else min(
            self.nb_bins, bandwidth_to_max_bin(self.geometry.sample_rate, self.geometry.n_fft, bandwidth))
        self.fc1 = keras.layers.Dense(hidden_size, use_bias=False)
        self.bn1 = keras.layers.BatchNormalization()
        units = hidden_size if unidirectional else hidden_size // 2
        self.lstms = [SequenceLSTM(units, bidirectional=not unidirectional) for _ in range(nb_layers)]
        self.dropout = keras.layers.Dropout(dropout if nb_layers > 1 else 0.0)
        self.fc2 = keras.layers.Dense(hidden_size, use_bias=False)
        self.bn2 = keras.layers.BatchNormalization()
        self.fc3 = keras.layers.Dense(self.nb_bins * channels, use_bias=False)
        self.bn3 = keras.layers.BatchNormalization()
        self.input_mean = self.add_weight(shape=(self.max_bin,), initializer="zeros", name="input_mean")
        self.input_scale = self.add_weight(shape=(self.max_bin,), initializer="ones", name="input_scale")
        self.output_scale = self.add_weight(shape=(self.nb_bins,), initializer="ones", name="output_scale")
        self.output_mean = self.add_weight(shape=(self.nb_bins,), initializer="ones", name="output_mean")

    def set_input_statistics(self, mean, std):
        """Initialises the input normalisation from per-bin training statistics."""
        self.input_mean.assign(-np.asarray(mean, np.float32)[:self.max_bin])
        self.input_scale.assign(1.0 / np.maximum(np.asarray(std, np.float32)[:self.max_bin], 1e-2))

    def mask(self, magnitude, training=False):
        """Target magnitude [B, channels, frames, bins] for a mixture magnitude of that shape."""
        x = self._encode(magnitude, training)
        h = x
        for i, lstm in enumerate(self.lstms):
            if i:
                h = self.dropout(h, training=training)
            h = lstm(h, training=training)
        return self._decode(x, h, magnitude, training)

    def mask_continued(self, magnitude, states):
        """`mask` at inference for a unidirectional model, continuing its LSTMs from
        `states` ((h, c) per layer, zeros at the start): (target magnitude, new states).
        Frames fed in consecutive calls give what one call over all of them gives."""
        x = self._encode(magnitude, False)
        h, new_states = x, []
        for lstm, state in zip(self.lstms, states):
            h, state = lstm(h, initial_state=state, return_state=True)
            new_states.append(state)
        return self._decode(x, h, magnitude, False), new_states

    def initial_states(self, batch: int = 1) -> list:
        """Zero LSTM states for `mask_continued` (unidirectional models only)."""
        if not self.unidirectional:
            raise ConfigError("streaming needs OpenUnmix.unidirectional = True (a bidirectional LSTM "
                              "reads the future)")
        return [lstm.zero_state(batch) for lstm in self.lstms]

    def stream_state(self) -> dict:
        """The zero state of `stream_step` (unidirectional models only)."""
        states = self.initial_states()
        keep = self.geometry.n_fft - self.geometry.hop_length
        return {"input": tf.zeros([keep, self.channels]), "output": tf.zeros([keep, self.channels]),
                "norm": tf.zeros([keep]), "filled": tf.constant(0, tf.int32),
                "h": tf.stack([h for h, _ in states]), "c": tf.stack([c for _, c in states])}

    def stream_step(self, block, state: dict):
        """One hop of live input [hop_length, channels] -> (one hop of output, new state):
        a frame of the last n_fft samples, masked with the LSTM state carried, overlap-added.
        The first n_fft / hop_length - 1 calls only fill the frame and return zeros; then
        the output is the input's estimate delayed by n_fft - hop_length samples, framed as
        the offline STFT frames a signal (feed the reflection of its first n_fft / 2 samples
        first to reproduce offline separation exactly). Needs n_fft % hop_length == 0."""
        n_fft, hop = self.geometry.n_fft, self.geometry.hop_length
        keep = n_fft - hop
        frame = tf.concat([state["input"], block], 0)  # [n_fft, channels]
        window = features._window_fn(self.geometry)(n_fft)

        def warm_up():
            return (tf.zeros([hop, self.channels]), state["output"], state["norm"], state["h"], state["c"])

        def separate():
            spec = tf.signal.rfft(tf.transpose(frame) * window)[None, :, None, :]  # [1, channels, 1, bins]
            states = [[state["h"][i], state["c"][i]] for i in range(len(self.lstms))]
            out, states = self.estimate_frames(spec, states)
            out = tf.transpose(out[0, :, 0])  # [n_fft, channels]
            total = tf.concat([state["output"], tf.zeros([hop, self.channels])], 0) + out
            norm = tf.concat([state["norm"], tf.zeros([hop])], 0) + tf.square(window)
            ready = total[:hop] / tf.where(norm[:hop] > 1e-6, norm[:hop], 1.0)[:, None]
            return (ready, total[hop:], norm[hop:], tf.stack([h for h, _ in states]),
                    tf.stack([c for _, c in states]))

        out, output, norm, h, c = tf.cond(state["filled"] < keep, warm_up, separate)
        return out, {"input": frame[hop:], "output": output, "norm": norm,
                     "filled": tf.minimum(state["filled"] + hop, keep), "h": h, "c": c}

    def estimate_frames(self, spec, states):
        """The target's windowed frames [B, channels, frames, n_fft] from the spectra of
        windowed mixture frames [B, channels, frames, bins] (complex), masked with the
        LSTM states carried (mask_continued), the mixture's phase kept; and the new
        states. What streaming overlap-adds, one hop (stream_step) or many at a time
        (StreamingSeparator)."""
        magnitude = tf.abs(spec)
        estimate, states = self.mask_continued(magnitude, states)
        phase = tf.math.divide_no_nan(spec, tf.cast(magnitude, tf.complex64))
        frames = tf.signal.irfft(tf.cast(estimate, tf.complex64) * phase, [self.geometry.n_fft])
        return frames * features._window_fn(self.geometry)(self.geometry.n_fft), states

    def estimate_chunk(self, chunk, states):
        """estimate_frames of the STFT frames of a padded chunk [B, channels, samples]."""
        spec = tf.signal.stft(chunk, self.geometry.n_fft, self.geometry.hop_length, self.geometry.n_fft,
                              window_fn=features._window_fn(self.geometry), pad_end=False)
        return self.estimate_frames(spec, states)

    def _encode(self, magnitude, training):
        batch, frames = tf.shape(magnitude)[0], tf.shape(magnitude)[2]
        x = tf.cast(tf.transpose(magnitude, [0, 2, 1, 3]), self.compute_dtype)  # [B, T, C, F]
        x = (x[..., :self.max_bin] + tf.cast(self.input_mean, x.dtype)) * tf.cast(self.input_scale, x.dtype)
        x = tf.reshape(x, [batch, frames, self.channels * self.max_bin])
        return tf.tanh(self.bn1(self.fc1(x), training=training))

    def _decode(self, x, h, magnitude, training):
        batch, frames = tf.shape(magnitude)[0], tf.shape(magnitude)[2]
        x = tf.concat([x, h], -1)
        x = tf.nn.relu(self.bn2(self.fc2(x), training=training))
        x = self.bn3(self.fc3(x), training=training)
        x = tf.reshape(x, [batch, frames, self.channels, self.nb_bins])
        x = x * tf.cast(self.output_scale, x.dtype) + tf.cast(self.output_mean, x.dtype)
        return tf.cast(tf.transpose(tf.nn.relu(x), [0, 2, 1, 3]), magnitude.dtype) * magnitude

    def target_magnitude(self, mixture, training=False):
        """The estimated target magnitude [B, channels, frames, bins] (float32)."""
        return self.mask(tf.abs(features.channel_stft(mixture, self.geometry)), training)

    def call(self, mixture, training=False):
        spec = features.channel_stft(mixture, self.geometry)
        magnitude = tf.abs(spec)
        estimate = self.mask(magnitude, training)
        iterations = 0 if training else self.wiener_iterations
        sources = tf.stack([estimate, tf.nn.relu(magnitude - estimate)], 1) if iterations else estimate[:, None]
        target = wiener(sources, spec, iterations)[:, 0]
        wave = features.istft(target, self.geometry, tf.shape(mixture)[1])
        wave = tf.transpose(wave, [0, 2, 1])
        return wave[..., 0] if len(mixture.shape) == 2 else wave


class StreamingSeparator:
    """Block-by-block separation with a unidirectional OpenUnmix: a running STFT, the
    LSTM state carried between blocks, and an overlap-add inverse STFT. `push` takes
    any number of samples ([n] mono or [n, channels]) and returns the estimate samples
    no later frame can change; `flush` returns the rest. Together they equal offline
    separation of the whole input (the same reflect padding at both ends); a sample
    comes out one window plus one hop after it went in."""

    def __init__(self, model: OpenUnmix):
        self.model, self.geometry = model, model.geometry
        self.states = model.initial_states()
        self.pad = self.geometry.n_fft // 2
        self.window = features._window_fn(self.geometry)(self.geometry.n_fft).numpy()
        channels = model.channels
        self._head = np.zeros((0, channels), np.float32)  # the first samples, until they can be padded
        self._total = 0  # samples received
        # Padded coordinates: input from position _base, overlap-add sums from _ready on.
        self._input, self._base = None, 0
        self._sum = np.zeros((0, channels), np.float32)
        self._norm = np.zeros(0, np.float32)
        self._frames = 0  # frames separated so far
        self._ready = 0  # padded positions already returned
        self._returned = 0  # output samples returned
        self._step = traced_method(model, "estimate_chunk")  # traced once per model, not per stream

    def push(self, block) -> np.ndarray:
        block = np.asarray(block, np.float32).reshape(len(block), self.model.channels)
        self._total += len(block)
        if self._input is None:
            self._head = np.concatenate([self._head, block])
            if len(self._head) <= self.pad:
                return self._out(np.zeros((0, self.model.channels), np.float32))
            self._input = np.concatenate([self._head[1:self.pad + 1][::-1], self._head])
            self._tail = self._head[-self.pad - 1:]
        else:
            self._input = np.concatenate([self._input, block])
            self._tail = np.concatenate([self._tail, block])[-self.pad - 1:]
        return self._out(self._advance(final=False))

    def flush(self) -> np.ndarray:
        """The remaining samples, the end reflect-padded as offline separation pads it."""
        if self._input is None:  # shorter than half a window: one offline pass
            whole = self.model(self._head[None]).numpy().reshape(self._total, -1)
            return self._out(whole[self._returned:])
        self._input = np.concatenate([self._input, self._tail[:-1][::-1]])
        rest = self._advance(final=True)[:self._total - self._returned]
        return self._out(np.pad(rest, ((0, self._total - self._returned - len(rest)), (0, 0))))

    def _advance(self, final: bool) -> np.ndarray:
        """Separates every complete new frame; returns the samples now final. Only the
        input of frames to come and the sums not yet returned are kept."""
        n_fft, hop = self.geometry.n_fft, self.geometry.hop_length
        end_of_input = self._base + len(self._input)
        available = (end_of_input - n_fft) // hop + 1 if end_of_input >= n_fft else 0
        if available > self._frames:
            first = self._frames
            chunk = self._input[first * hop - self._base:(available - 1) * hop + n_fft - self._base]
            frames, self.states = self._step(tf.constant(chunk.T[None]), self.states)
            grow = (available - 1) * hop + n_fft - (self._ready + len(self._norm))
            self._sum = np.concatenate([self._sum, np.zeros((grow, self.model.channels), np.float32)])
            self._norm = np.concatenate([self._norm, np.zeros(grow, np.float32)])
            squared = self.window ** 2
            for k, frame in enumerate(np.transpose(frames.numpy()[0], (1, 2, 0))):  # [n_fft, channels]
                start = (first + k) * hop - self._ready
                self._sum[start:start + n_fft] += frame
                self._norm[start:start + n_fft] += squared
            self._frames = available
            self._input = self._input[available * hop - self._base:]
            self._base = available * hop
        end = self._ready + len(self._norm) if final else self._frames * hop
        count = end - self._ready
        out = self._sum[:count] / np.where(self._norm[:count] > 1e-6, self._norm[:count], 1.0)[:, None]
        self._sum, self._norm = self._sum[count:], self._norm[count:]
        skip = max(0, self.pad - self._ready)  # the start padding is never output
        self._ready = end
        return out[skip:]

    def _out(self, samples: np.ndarray) -> np.ndarray:
        self._returned += len(samples)
        return samples[:, 0] if self.model.channels == 1 else samples
