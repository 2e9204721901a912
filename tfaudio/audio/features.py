"""Spectral features in TensorFlow (`tf.signal`), usable in tf.data and inside models.

All framing comes from an `AudioGeometry`; waveforms are [..., samples] float32.
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

from tfaudio.audio.geometry import AudioGeometry


def _window_fn(geometry: AudioGeometry):
    """A periodic Hann window of `win_length`, zero-padded (centred) to `n_fft`."""
    def window(frame_length, dtype=tf.float32):
        del frame_length
        win = tf.signal.hann_window(geometry.win_length, periodic=True, dtype=dtype)
        left = (geometry.n_fft - geometry.win_length) // 2
        return tf.pad(win, [[left, geometry.n_fft - geometry.win_length - left]])
    return window


def stft(wave: tf.Tensor, geometry: AudioGeometry, pad_mode: str = "REFLECT") -> tf.Tensor:
    """Complex STFT [..., frames, bins]. With `geometry.center`, the signal is padded by
    n_fft // 2 on both sides (`pad_mode` REFLECT or CONSTANT) so frames are centred.
    Always in float32: under mixed precision Keras hands a model its waveform in half."""
    wave = tf.cast(wave, tf.float32)
    if geometry.center:
        pad = geometry.n_fft // 2
        rank = len(wave.shape)
        paddings = [[0, 0]] * (rank - 1) + [[pad, pad]]
        if pad_mode == "REFLECT":
            # Reflection needs more samples than the pad; fall back to zeros for tiny inputs.
            wave = tf.cond(tf.shape(wave)[-1] > pad,
                           lambda: tf.pad(wave, paddings, mode="REFLECT"),
                           lambda: tf.pad(wave, paddings))
        else:
            wave = tf.pad(wave, paddings)
    return tf.signal.stft(wave, frame_length=geometry.n_fft, frame_step=geometry.hop_length,
                          fft_length=geometry.n_fft, window_fn=_window_fn(geometry), pad_end=False)


def channel_stft(wave: tf.Tensor, geometry: AudioGeometry) -> tf.Tensor:
    """Complex STFT [batch, channels, frames, bins] of [batch, samples] (one channel) or
    [batch, samples, channels]."""
    wave = tf.cast(wave, tf.float32)
    return stft(wave[:, None] if len(wave.shape) == 2 else tf.transpose(wave, [0, 2, 1]), geometry)


def istft(spec: tf.Tensor, geometry: AudioGeometry, length: int | tf.Tensor | None = None) -> tf.Tensor:
    """Inverse of `stft`: windowed overlap-add divided by the overlap-added squared window,
    which is exact at the edges too. Trims the centre padding and, when `length` is
    given, pads or cuts to exactly `length` samples. Differentiable."""
    window = _window_fn(geometry)(geometry.n_fft)
    frames = tf.signal.irfft(spec, fft_length=[geometry.n_fft]) * window
    wave = tf.signal.overlap_and_add(frames, geometry.hop_length)
    num_frames = tf.shape(spec)[-2]
    norm = tf.signal.overlap_and_add(tf.tile(tf.square(window)[None], [num_frames, 1]), geometry.hop_length)
    wave = wave / tf.where(norm > 1e-6, norm, 1.0)
    if geometry.center:
        wave = wave[..., geometry.n_fft // 2:]
    if length is not None:
        wave = fit_length(wave, length)
    return wave


def fit_length(wave: tf.Tensor, length) -> tf.Tensor:
    """Cuts or zero-pads the last axis to `length`."""
    wave = wave[..., :length]
    missing = tf.maximum(length - tf.shape(wave)[-1], 0)
    rank = len(wave.shape)
    return tf.pad(wave, [[0, 0]] * (rank - 1) + [[0, missing]])


def magnitude(wave: tf.Tensor, geometry: AudioGeometry) -> tf.Tensor:
    """Magnitude spectrogram |STFT| [..., frames, bins]."""
    return tf.abs(stft(wave, geometry))


@functools.lru_cache(maxsize=None)
def mel_matrix(geometry: AudioGeometry) -> np.ndarray:
    """[bins, n_mels] HTK-style mel filterbank between fmin and fmax, computed once per
    geometry (a trace embeds it as a constant instead of rebuilding it from ops)."""
    with tf.init_scope():
        matrix = tf.signal.linear_to_mel_weight_matrix(
            num_mel_bins=geometry.n_mels, num_spectrogram_bins=geometry.n_bins,
            sample_rate=geometry.sample_rate, lower_edge_hertz=geometry.fmin,
            upper_edge_hertz=geometry.mel_fmax).numpy()
    matrix.setflags(write=False)  # shared by every caller
    return matrix


def mel_from_spectrum(spec: tf.Tensor, geometry: AudioGeometry) -> tf.Tensor:
    """Mel bands [..., frames, n_mels] of a linear-frequency spectrogram [..., frames, bins]."""
    return tf.tensordot(spec, mel_matrix(geometry), 1)


def mel_spectrogram(wave: tf.Tensor, geometry: AudioGeometry, spectrum_power: float = 1.0) -> tf.Tensor:
    """Mel spectrogram [..., frames, n_mels] of |STFT|^spectrum_power."""
    spec = magnitude(wave, geometry)
    if spectrum_power != 1.0:
        spec = tf.pow(spec, spectrum_power)
    return mel_from_spectrum(spec, geometry)


def mfcc(log_mel: tf.Tensor) -> tf.Tensor:
    """MFCCs [..., frames, n_mels] (every coefficient) of log-mel bands [..., frames, n_mels]:
    the DCT-II scaled by sqrt(2 / n_mels) for every coefficient (HTK's convention, as
    tf.signal computes it; scipy's orthonormal DCT differs only in c0, by sqrt(2))."""
    return tf.signal.mfccs_from_log_mel_spectrograms(log_mel)


def griffin_lim(mag: tf.Tensor, geometry: AudioGeometry, iterations: int = 32, power: float = 1.0,
                momentum: float = 0.99, length=None) -> tf.Tensor:
    """Waveform from a magnitude spectrogram [..., frames, bins] by (fast) Griffin-Lim,
    as a graph loop. `power` raises the magnitude first (values > 1 sharpen, as in
    Tacotron); `momentum` 0 gives the classic algorithm."""
    mag = tf.cast(tf.convert_to_tensor(mag), tf.float32)
    if power != 1.0:
        mag = tf.pow(mag, power)
    mag_c = tf.complex(mag, tf.zeros_like(mag))
    frames = tf.shape(mag)[-2]
    length = geometry.samples_for_frames(frames) if length is None else length

    def project(angles):
        wave = istft(mag_c * angles, geometry, length)
        rebuilt = stft(wave, geometry)[..., :frames, :]
        return rebuilt / tf.complex(tf.maximum(tf.abs(rebuilt), 1e-8), 0.0)

    angles = tf.ones_like(mag_c)
    previous = tf.zeros_like(mag_c)

    def body(i, angles, previous):
        new = project(angles)
        accelerated = new + tf.complex(momentum / (1.0 + momentum), 0.0) * (new - previous)
        return i + 1, accelerated / tf.complex(tf.maximum(tf.abs(accelerated), 1e-8), 0.0), new

    _, angles, _ = tf.while_loop(lambda i, *_: i < iterations, body, (tf.constant(0), angles, previous))
    return istft(mag_c * angles, geometry, length)
