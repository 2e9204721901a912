"""Small real audio files written inside tests."""

import os

import numpy as np
import soundfile as sf


def tone(seconds=0.5, rate=8000, freq=440.0, amp=0.5, channels=1):
    t = np.arange(int(seconds * rate)) / rate
    x = (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def write(path, audio, rate=8000, subtype="PCM_16"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    sf.write(path, audio, rate, subtype=subtype)
    return path


def ljspeech(root, n=6, rate=8000, seconds=0.4):
    rows = []
    for i in range(n):
        write(os.path.join(root, "wavs", f"u{i}.wav"), tone(seconds, rate, 200 + 50 * i), rate)
        rows.append(f"u{i}|Text {i}.|text {i}|spk{i % 2}")
    with open(os.path.join(root, "metadata.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    return root


def mixtures(root, n_train=8, n_valid=2, rate=8000, seconds=1.2):
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("valid", n_valid)):
        for i in range(n):
            speech = tone(seconds, rate, 300 + 40 * i, 0.3)
            music = (0.1 * rng.normal(size=speech.shape)).astype(np.float32)
            folder = os.path.join(root, split, f"t{i}")
            write(os.path.join(folder, "speech.wav"), speech, rate)
            write(os.path.join(folder, "music.wav"), music, rate)
            write(os.path.join(folder, "mixture.wav"), speech + music, rate)
    return root


def char_speech(root, n=64, rate=8000, char_seconds=0.05, seed=0):
    """An LJSpeech-layout corpus whose audio spells its text: each letter is a tone of
    its own pitch, spaces are silence, so attention has something real to align."""
    rng = np.random.default_rng(seed)
    words = ["one", "two", "ten", "hold", "press", "call", "agent", "number", "pound", "key"]
    rows = []
    for i in range(n):
        text = " ".join(rng.choice(words, size=int(rng.integers(1, 4))))
        pieces = [tone(char_seconds, rate, 200 + 40 * (ord(c) - 96), 0.3) if c != " "
                  else np.zeros(int(char_seconds * rate), np.float32) for c in text]
        write(os.path.join(root, "wavs", f"s{i:03d}.wav"), np.concatenate(pieces), rate)
        rows.append(f"s{i:03d}|{text.capitalize()}.|{text.capitalize()}.")
    with open(os.path.join(root, "metadata.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    return root


def class_folders(root, classes=3, per_class=4, rate=8000, seconds=0.6, splits=("train", "valid")):
    """<root>/<split>/c<k>/*.wav: class k is a tone of amplitude 0.1 (k + 1) at its own
    pitch, so a crop's amplitude tells which file (class) it came from."""
    for split in splits:
        for k in range(classes):
            for i in range(per_class):
                wave = tone(seconds * (1 + i / per_class), rate, 200 + 150 * k, 0.1 * (k + 1))
                write(os.path.join(root, split, f"c{k}", f"{split}{i}.wav"), wave, rate)
    return root
