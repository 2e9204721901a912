"""One place that derives linked audio geometry: sample rate, FFT, window, hop, frames, samples.

Every feature, dataset and model reads these numbers from an `AudioGeometry`
built here, so an inconsistent combination is rejected once, at start-up,
with both offending bindings named.
"""

from __future__ import annotations

import dataclasses

import gin

from tfaudio.errors import ConfigError
from tfaudio.limits import NON_NEGATIVE, NYQUIST, POSITIVE_INT, Range, limits


class GeometryError(ConfigError):
    """Two audio bindings disagree; the message names both and the fix."""


@dataclasses.dataclass(frozen=True)
class AudioGeometry:
    """Sample rate and STFT framing shared by data, features and models.

    Attributes:
      sample_rate: samples per second of every waveform in the run.
      n_fft: FFT size; the spectrogram has n_fft // 2 + 1 bins.
      win_length: analysis window length in samples (<= n_fft).
      hop_length: hop between frames in samples (<= win_length).
      n_mels: mel bands, when mel features are used.
      fmin, fmax: mel band edges in Hz; fmax defaults to Nyquist.
      center: pad the signal by n_fft // 2 on both sides before framing, so
        frame t is centred on sample t * hop_length.
    """

    sample_rate: int = 22050
    n_fft: int = 1024
    win_length: int = 1024
    hop_length: int = 256
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float | None = None
    center: bool = True

    def __post_init__(self):
        def need(cond, msg):
            if not cond:
                raise GeometryError(msg)

        need(self.sample_rate > 0, f"audio_geometry.sample_rate={self.sample_rate} must be positive.")
        need(self.n_fft > 0 and self.hop_length > 0 and self.win_length > 0,
             "audio_geometry.n_fft, win_length and hop_length must be positive.")
        need(self.win_length <= self.n_fft,
             f"audio_geometry.win_length={self.win_length} exceeds audio_geometry.n_fft={self.n_fft}; "
             "make the window no longer than the FFT.")
        need(self.hop_length <= self.win_length,
             f"audio_geometry.hop_length={self.hop_length} exceeds audio_geometry.win_length="
             f"{self.win_length}; frames would skip samples.")
        nyquist = self.sample_rate / 2
        need(self.fmax is None or self.fmax <= nyquist,
             f"audio_geometry.fmax={self.fmax} is above Nyquist for audio_geometry.sample_rate="
             f"{self.sample_rate} ({nyquist:g} Hz); lower fmax or raise the sample rate.")
        need(0 <= self.fmin < self.mel_fmax,
             f"audio_geometry.fmin={self.fmin} must lie below audio_geometry.fmax={self.mel_fmax}.")

    @property
    def mel_fmax(self) -> float:
        return float(self.fmax) if self.fmax is not None else self.sample_rate / 2

    @property
    def n_bins(self) -> int:
        return self.n_fft // 2 + 1

    def samples(self, seconds: float) -> int:
        """Samples in `seconds` of audio."""
        return int(round(seconds * self.sample_rate))

    def frames(self, num_samples: int) -> int:
        """STFT frames produced for `num_samples` samples under this framing."""
        if self.center:
            return num_samples // self.hop_length + 1
        return max(0, 1 + (num_samples - self.win_length) // self.hop_length)

    def samples_for_frames(self, num_frames: int) -> int:
        """Samples the inverse STFT produces from `num_frames` frames."""
        if self.center:
            return (num_frames - 1) * self.hop_length
        return (num_frames - 1) * self.hop_length + self.win_length


@gin.configurable
@limits(sample_rate=POSITIVE_INT, n_fft=POSITIVE_INT, win_length=POSITIVE_INT.or_none(), hop_length=POSITIVE_INT,
        n_mels=POSITIVE_INT, fmin=NON_NEGATIVE, fmax=Range(0, NYQUIST, low_open=True, none=True))
def audio_geometry(sample_rate: int = 22050, n_fft: int = 1024, win_length: int | None = None,
                   hop_length: int = 256, n_mels: int = 80, fmin: float = 0.0,
                   fmax: float | None = None, center: bool = True) -> AudioGeometry:
    """The run's audio geometry; bind it once (`audio_geometry.sample_rate = 8000`).

    `win_length` defaults to `n_fft`.
    """
    return AudioGeometry(sample_rate=sample_rate, n_fft=n_fft,
                         win_length=n_fft if win_length is None else win_length,
                         hop_length=hop_length, n_mels=n_mels, fmin=fmin, fmax=fmax, center=center)
