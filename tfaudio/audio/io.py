"""Reading and writing audio files with soundfile (WAV of any width, FLAC, OGG, MP3).

`tf.audio.decode_wav` reads only 16-bit PCM, so every read goes through
libsndfile; inside tf.data this runs in `tf.numpy_function` (see data/audio_data and data/separation_data).
"""

from __future__ import annotations

import os
import sys

import numpy as np
import soundfile as sf
import soxr


class AudioReadError(ValueError):
    """A file could not be read as audio; the message names the file and the reason."""


def audio_info(path: str) -> sf._SoundFileInfo:
    """Header information (samplerate, frames, channels) without decoding samples."""
    if not os.path.isfile(path):
        raise AudioReadError(f"{path}: no such file")
    try:
        info = sf.info(path)
    except Exception as exc:  # soundfile raises several types for bad headers
        raise AudioReadError(f"{path}: unreadable audio header ({_short(exc)})") from None
    if info.frames <= 0:
        raise AudioReadError(f"{path}: contains no samples")
    promised = _wav_promised_frames(path, info)
    if promised is not None and promised > info.frames:
        raise AudioReadError(f"{path}: truncated: its header promises {promised} samples, the file holds "
                             f"{info.frames}")
    return info


def _wav_promised_frames(path: str, info) -> int | None:
    """Frames the RIFF "data" chunk header declares (libsndfile reports only what is there);
    None for other formats or a streaming header that declares no size."""
    if info.format != "WAV" or not info.subtype.startswith(("PCM", "FLOAT", "DOUBLE")):
        return None
    width = {"PCM_U8": 1, "PCM_S8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8}.get(info.subtype)
    if width is None:
        return None
    with open(path, "rb") as f:
        if f.read(4) != b"RIFF" or (f.read(4) and f.read(4) != b"WAVE"):
            return None
        while True:
            header = f.read(8)
            if len(header) < 8:
                return None
            chunk, size = header[:4], int.from_bytes(header[4:], "little")
            if chunk == b"data":
                return None if size in (0, 0xFFFFFFFF) else size // (width * info.channels)
            f.seek(size + (size & 1), 1)


def read_audio(path: str, sample_rate: int, channels: int = 1, on_rate_mismatch: str = "resample",
               max_seconds: float | None = None, start: float = 0.0, seconds: float | None = None) -> np.ndarray:
    """Reads `path` (or a segment of it) as float32 [samples, channels] at `sample_rate`.

    Args:
      path: an audio file soundfile can open.
      sample_rate: the rate the caller expects.
      channels: 1 averages all channels to mono; 2 keeps stereo (a mono file
        is duplicated); 0 keeps the file's own channels.
      on_rate_mismatch: "resample" (soxr, high quality) or "reject".
      max_seconds: reject files longer than this before decoding them.
      start, seconds: decode only [start, start + seconds), zero-padded at the end to
        exactly `seconds` (None: to the end of the file).
    """
    info = audio_info(path)
    if max_seconds is not None and info.frames > max_seconds * info.samplerate:
        raise AudioReadError(f"{path}: {info.frames / info.samplerate:.1f} s is longer than "
                             f"max_seconds={max_seconds}")
    first = int(round(start * info.samplerate))
    frames = -1 if seconds is None else int(round(seconds * info.samplerate))
    try:
        audio, rate = sf.read(path, start=first, frames=frames, dtype="float32", always_2d=True)
    except Exception as exc:
        raise AudioReadError(f"{path}: cannot decode samples ({_short(exc)})") from None
    if audio.shape[0] == 0:
        raise AudioReadError(f"{path}: no samples at {start:.2f} s" if first else f"{path}: contains no samples")
    if rate != sample_rate:
        if on_rate_mismatch == "reject":
            raise AudioReadError(f"{path}: sample rate {rate} Hz, expected {sample_rate} Hz "
                                 "(set on_rate_mismatch='resample' to convert)")
        if on_rate_mismatch != "resample":
            raise ValueError(f"on_rate_mismatch={on_rate_mismatch!r}: use 'resample' or 'reject'")
        audio = soxr.resample(audio, rate, sample_rate, quality="HQ").astype(np.float32)
    if seconds is not None:
        want = int(round(seconds * sample_rate))
        audio = np.pad(audio[:want], ((0, max(0, want - len(audio))), (0, 0)))
    return _match_channels(audio, channels)


def _match_channels(audio: np.ndarray, channels: int) -> np.ndarray:
    if channels == 0 or audio.shape[1] == channels:
        return audio
    if channels == 1:
        return audio.mean(axis=1, keepdims=True)
    if audio.shape[1] == 1:
        return np.repeat(audio, channels, axis=1)
    raise ValueError(f"cannot turn {audio.shape[1]} channels into {channels}")


def write_wav(path: str, audio, sample_rate: int, subtype: str = "PCM_16") -> str:
    """Writes float audio ([samples] or [samples, channels]); integer PCM subtypes clip to
    [-1, 1], "FLOAT" keeps every value."""
    audio = np.asarray(audio, dtype=np.float32)
    if subtype != "FLOAT":
        audio = np.clip(audio, -1.0, 1.0)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    sf.write(path, audio, sample_rate, subtype=subtype)
    return path


def _short(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__


class InferenceInputs:
    """The files of an inference command: each is probed at once (an unreadable one is
    named on stderr and skipped, before any model loads); `read(rate)` then yields
    (path, wave) for the rest, rejecting a file at another rate (unless `resample`) or
    one that fails to decode, each with one line; `report()` says what was skipped."""

    def __init__(self, paths: list[str], resample: bool = False):
        self.paths, self.resample, self.skipped = paths, resample, 0
        self.readable = []
        for path in paths:
            try:
                audio_info(path)
                self.readable.append(path)
            except (AudioReadError, RuntimeError) as exc:
                self._skip(exc)

    def _skip(self, reason):
        print(f"skipped: {reason}", file=sys.stderr)
        self.skipped += 1

    def read(self, rate: int, channels: int = 1):
        """(path, wave [samples] for mono, [samples, channels] otherwise) of each readable file."""
        for path in self.readable:
            try:
                file_rate = audio_info(path).samplerate
                if file_rate != rate and not self.resample:
                    raise AudioReadError(f"{path} is {file_rate} Hz but the model was trained at {rate} Hz; "
                                         "pass --resample to convert it")
                wave = read_audio(path, rate, channels)
            except (AudioReadError, RuntimeError) as exc:
                self._skip(exc)
                continue
            yield path, wave[:, 0] if channels == 1 else wave

    def report(self) -> int:
        """Prints how many files were skipped; the exit code (1 when any was)."""
        if self.skipped:
            print(f"{self.skipped} of {len(self.paths)} files skipped", file=sys.stderr)
        return 1 if self.skipped else 0
