"""Real corpora built offline from Debian packages, in the layouts users already have.

- asterisk: the real 8 kHz prompts of `asterisk-core-sounds-en-wav` with transcripts
  from `asterisk-core-sounds-en`, LJSpeech layout; tones and other non-speech dropped.
- espeak: template sentences spoken by espeak-ng with several voices, rates and
  pitches, LJSpeech layout with a speaker column.
- mixtures: speech plus music rendered by fluidsynth (TimGM6mb soundfont) from random
  MIDI, mixed at random SNRs, MUSDB18-HQ-like train/ and valid/ splits.
- digits: folder-per-class spoken digits; espeak voices for train and valid, the real
  asterisk digit recordings as test.
- langid: spoken-language identification, folder per language (en, es, fr, it, ru),
  from the real asterisk prompts of each language's package; train/ valid/ test/ split
  by prompt name, so a prompt is in one split in every language.

Every builder marks its folder as building (readers.BUILDING) until its manifest is
written, last, so a half-built corpus is refused by the readers; a rebuild after an
interruption draws each file's randomness from its own seed, so it finishes the
same corpus an uninterrupted build writes.
"""

from __future__ import annotations

import gzip
import os
import random
import re
import shutil
import struct
import subprocess
import tempfile

import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from tfaudio.data.readers import BUILDING, read_ljspeech

ASTERISK_SOUNDS = "/usr/share/asterisk/sounds/en_US_f_Allison"
ASTERISK_TEXT = "/usr/share/doc/asterisk-core-sounds-en/core-sounds-en.txt.gz"
SOUNDFONT = "/usr/share/sounds/sf2/TimGM6mb.sf2"
LANGUAGES = {"en": "en_US_f_Allison", "es": "es_MX_f_Allison", "fr": "fr_CA_f_June", "it": "it_IT_m_Carlo",
             "ru": "ru_RU_f_IvrvoiceRU"}
PACKAGES = {"langid": [f"asterisk-core-sounds-{lang}-wav" for lang in LANGUAGES],
            "asterisk": ["asterisk-core-sounds-en-wav", "asterisk-core-sounds-en"],
            "espeak": ["espeak-ng"], "digits": ["espeak-ng", "asterisk-core-sounds-en-wav"],
            "mixtures": ["espeak-ng", "fluidsynth", "timgm6mb-soundfont",
                         "asterisk-core-sounds-en-wav", "asterisk-core-sounds-en"]}
ESPEAK_VOICES = ("en-us", "en-gb", "en-gb-scotland", "en-us+f3", "en-gb+f2", "en-029")
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


class MissingPackage(RuntimeError):
    """A Debian package a corpus needs is not installed."""


def require(paths_or_cmds, corpus: str):
    missing = [p for p in paths_or_cmds if not (os.path.exists(p) or shutil.which(p))]
    if missing:
        raise MissingPackage(f"corpus {corpus!r} needs {', '.join(missing)}: install with "
                             f"`sudo apt-get install {' '.join(PACKAGES[corpus])}` (or run `make demo`)")


def _start(out: str):
    """Marks `out` as half-built until _write_manifest_last."""
    os.makedirs(out, exist_ok=True)
    open(os.path.join(out, BUILDING), "w").close()


def _write_manifest_last(path: str, lines):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.writelines(line + "\n" for line in lines)
    os.replace(tmp, path)
    os.remove(os.path.join(os.path.dirname(path), BUILDING))


def _save(path: str, audio: np.ndarray, rate: int):
    if not os.path.exists(path):
        tmp = path + ".part.wav"
        sf.write(tmp, np.clip(audio, -1, 1), rate, subtype="PCM_16")
        os.replace(tmp, path)


# ------------------------------------------------------------------ asterisk


def clean_asterisk_text(text: str) -> str:
    """What a prompt's audio says: notes in parentheses ("(note: does not say "2")",
    "(simple tone sound plays)") and symbols in brackets ("at [@]") removed, the known
    misspelling corrected; "" when nothing spoken remains ("(1 second of silence)")."""
    text = re.sub(r"\([^)]*\)|\[[^\]]*\]", " ", text).replace("exclaimation", "exclamation")
    return " ".join(text.split())


def asterisk_transcripts() -> dict:
    """{prompt id: text} for spoken prompts; bracketed non-speech entries and prompts whose
    transcript says nothing spoken (silence clips) dropped, notes removed."""
    out = {}
    with gzip.open(ASTERISK_TEXT, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if ":" not in line or line.startswith(";"):
                continue
            key, text = line.split(":", 1)
            text = text.strip()
            if not text or text.startswith(("[", "<")):
                continue
            text = clean_asterisk_text(text)
            if text:
                out[key.strip()] = text
    return out


def build_asterisk(out: str) -> str:
    """LJSpeech layout of the real 8 kHz asterisk prompts that have transcripts."""
    require([ASTERISK_SOUNDS, ASTERISK_TEXT], "asterisk")
    _start(out)
    texts = asterisk_transcripts()
    wav_dir = os.path.join(out, "wavs")
    os.makedirs(wav_dir, exist_ok=True)
    rows = []
    files = sorted(os.path.join(d, f) for d, _, fs in os.walk(ASTERISK_SOUNDS) for f in fs
                   if f.endswith(".wav"))
    for path in tqdm(files, desc="asterisk", unit="file"):
        key = os.path.relpath(path, ASTERISK_SOUNDS)[:-4]
        if key not in texts:
            continue
        ident = key.replace("/", "_")
        target = os.path.join(wav_dir, ident + ".wav")
        if not os.path.exists(target):
            shutil.copyfile(path, target)
        text = texts[key].replace("|", " ")
        rows.append(f"{ident}|{text}|{text}|allison")
    _write_manifest_last(os.path.join(out, "metadata.csv"), rows)
    return f"{out}: {len(rows)} utterances (LJSpeech layout, 8 kHz)"


# ------------------------------------------------------------------ espeak

_SUBJECTS = ("the operator", "your call", "the meeting", "a new message", "the conference",
             "the weather", "my neighbour", "the next train", "the music", "our team")
_VERBS = ("will start", "has been moved", "is waiting", "was cancelled", "begins", "ends",
          "can be reached", "is ready")
_TIMES = ("at seven", "in five minutes", "tomorrow morning", "on Friday", "after lunch",
          "before noon", "at half past nine", "tonight")
_EXTRAS = ("", "please hold", "thank you", "press one to continue", "for more information",
           "as planned")


def template_sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        s = f"{rng.choice(_SUBJECTS)} {rng.choice(_VERBS)} {rng.choice(_TIMES)}"
        extra = rng.choice(_EXTRAS)
        out.append((s + (", " + extra if extra else "")).capitalize() + ".")
    return out


def speak(text: str, voice: str, rate_wpm: int, pitch: int, sample_rate: int) -> np.ndarray:
    """espeak-ng speech of `text`, resampled to sample_rate (mono float32)."""
    with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
        subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate_wpm), "-p", str(pitch), "-w", tmp.name,
                        text], check=True, capture_output=True)
        audio, rate = sf.read(tmp.name, dtype="float32")
    if audio.ndim > 1:
        audio = audio.mean(axis=1)
    if rate != sample_rate:
        audio = soxr.resample(audio, rate, sample_rate).astype(np.float32)
    return audio


def build_espeak(out: str, num_sentences: int = 600, sample_rate: int = 8000, seed: int = 0) -> str:
    """LJSpeech layout with a speaker column; voices, rates and pitches vary per sentence."""
    require(["espeak-ng"], "espeak")
    _start(out)
    rng = random.Random(seed)
    wav_dir = os.path.join(out, "wavs")
    os.makedirs(wav_dir, exist_ok=True)
    rows = []
    for i, text in enumerate(tqdm(template_sentences(num_sentences, seed), desc="espeak", unit="utt")):
        voice, rate, pitch = rng.choice(ESPEAK_VOICES), rng.randint(140, 190), rng.randint(30, 70)
        ident = f"espeak_{i:05d}"
        path = os.path.join(wav_dir, ident + ".wav")
        if not os.path.exists(path):
            _save(path, speak(text, voice, rate, pitch, sample_rate), sample_rate)
        rows.append(f"{ident}|{text}|{text}|{voice}")
    _write_manifest_last(os.path.join(out, "metadata.csv"), rows)
    return f"{out}: {len(rows)} utterances at {sample_rate} Hz"


# ------------------------------------------------------------------ digits


def build_digits(out: str, sample_rate: int = 8000, repeats: int = 4, seed: int = 0) -> str:
    """train/ and valid/ from disjoint espeak voices, test/ from the real asterisk digits."""
    require(["espeak-ng", ASTERISK_SOUNDS], "digits")
    _start(out)
    voices = {"train": ESPEAK_VOICES[:4], "valid": ESPEAK_VOICES[4:]}
    count = 0
    for split, split_voices in voices.items():
        for d, word in enumerate(tqdm(DIGIT_WORDS, desc=f"digits/{split}", unit="class")):
            folder = os.path.join(out, split, str(d))
            os.makedirs(folder, exist_ok=True)
            for voice in split_voices:
                for r in range(repeats):
                    path = os.path.join(folder, f"{voice.replace('+', '_')}_{r}.wav")
                    if not os.path.exists(path):
                        rng = random.Random(f"{seed}:{path}")
                        _save(path, speak(word, voice, rng.randint(130, 200), rng.randint(25, 75),
                                          sample_rate), sample_rate)
                    count += 1
    for d in range(10):
        folder = os.path.join(out, "test", str(d))
        os.makedirs(folder, exist_ok=True)
        audio, rate = sf.read(os.path.join(ASTERISK_SOUNDS, "digits", f"{d}.wav"), dtype="float32")
        _save(os.path.join(folder, "allison.wav"), soxr.resample(audio, rate, sample_rate)
              if rate != sample_rate else audio, sample_rate)
        count += 1
    _write_manifest_last(os.path.join(out, "classes.txt"), [str(d) for d in range(10)])
    return f"{out}: {count} files in train/ valid/ test/ (folder per class)"


# ------------------------------------------------------------------ langid


def prompt_split(prompt: str, valid: float = 0.15, test: float = 0.15) -> str:
    """train, valid or test for a prompt name, by a stable hash of the name."""
    import zlib

    bucket = (zlib.crc32(prompt.encode("utf-8")) % 10000) / 10000.0
    return "test" if bucket < test else "valid" if bucket < test + valid else "train"


def build_langid(out: str, sample_rate: int = 8000, min_seconds: float = 0.5) -> str:
    """Folder per language under train/, valid/ and test/ from the asterisk prompts of
    each language; clips shorter than min_seconds (beeps, single syllables) are left out."""
    roots = {lang: os.path.join("/usr/share/asterisk/sounds", voice) for lang, voice in LANGUAGES.items()}
    require(list(roots.values()), "langid")
    _start(out)
    counts = {}
    for lang, root in roots.items():
        files = sorted(os.path.join(d, f) for d, _, fs in os.walk(root) for f in fs if f.endswith(".wav"))
        for path in tqdm(files, desc=f"langid/{lang}", unit="file"):
            prompt = os.path.relpath(path, root)[:-4].replace("/", "_")
            audio, rate = sf.read(path, dtype="float32", always_2d=True)
            audio = audio.mean(axis=1)
            if len(audio) < min_seconds * rate or np.abs(audio).max() < 1e-3:
                continue
            if rate != sample_rate:
                audio = soxr.resample(audio, rate, sample_rate).astype(np.float32)
            split = prompt_split(prompt)
            folder = os.path.join(out, split, lang)
            os.makedirs(folder, exist_ok=True)
            _save(os.path.join(folder, prompt + ".wav"), audio, sample_rate)
            counts[split] = counts.get(split, 0) + 1
    _write_manifest_last(os.path.join(out, "classes.txt"), list(LANGUAGES))
    return f"{out}: " + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("train", "valid", "test")) + \
        f" clips of {len(LANGUAGES)} languages (folder per class)"


# ------------------------------------------------------------------ mixtures


def random_midi(path: str, seconds: float, program: int, rng: random.Random):
    """A format-0 MIDI file of random notes in one scale on one instrument program."""
    tpq, tempo_us = 480, 500000  # 120 bpm
    scale = [0, 2, 4, 5, 7, 9, 11]
    root = rng.choice([48, 52, 55, 57, 60])
    events = [(0, bytes([0xFF, 0x51, 0x03]) + tempo_us.to_bytes(3, "big")),
              (0, bytes([0xC0, program]))]
    t, end = 0, int(seconds * 2 * tpq)
    while t < end:
        dur = rng.choice([tpq // 2, tpq, tpq * 2])
        chord = [root + rng.choice(scale) + 12 * rng.choice([0, 1]) for _ in range(rng.choice([1, 2, 3]))]
        for note in chord:
            events.append((t, bytes([0x90, note, rng.randint(60, 110)])))
        for note in chord:
            events.append((t + dur, bytes([0x80, note, 0])))
        t += dur
    events.sort(key=lambda e: e[0])
    track, last = b"", 0
    for when, data in events:
        track += _varlen(when - last) + data
        last = when
    track += b"\x00\xFF\x2F\x00"
    with open(path, "wb") as f:
        f.write(b"MThd" + struct.pack(">IHHH", 6, 0, 1, tpq))
        f.write(b"MTrk" + struct.pack(">I", len(track)) + track)


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    return bytes(reversed(out))


def render_music(seconds: float, program: int, sample_rate: int, rng: random.Random) -> np.ndarray:
    with tempfile.TemporaryDirectory() as tmp:
        midi, wav = os.path.join(tmp, "m.mid"), os.path.join(tmp, "m.wav")
        random_midi(midi, seconds, program, rng)
        subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.8", "-r", str(sample_rate), "-F", wav,
                        SOUNDFONT, midi], check=True, capture_output=True)
        audio, _ = sf.read(wav, dtype="float32")
    return audio.mean(axis=1) if audio.ndim > 1 else audio


def build_mixtures(out: str, speech_dir: str, sample_rate: int = 8000, valid_fraction: float = 0.1,
                   music_clips: int = 24, seed: int = 0, snr_db=(-5.0, 5.0)) -> str:
    """MUSDB18-HQ-like tracks of speech (an LJSpeech-layout corpus) plus rendered music
    (rendered once into music_pool.npy, which a rebuild reuses)."""
    speech = read_ljspeech(speech_dir).examples
    programs = [0, 4, 24, 32, 40, 48, 56, 73]  # piano, e-piano, guitar, bass, violin, strings, trumpet, flute
    pool_path = os.path.join(out, "music_pool.npy")
    _start(out)
    if os.path.exists(pool_path):
        pool = list(np.load(pool_path, allow_pickle=True))
    else:
        require(["fluidsynth", SOUNDFONT], "mixtures")
        rng = random.Random(seed)
        pool = [render_music(30.0, programs[i % len(programs)], sample_rate, rng)
                for i in tqdm(range(music_clips), desc="music", unit="clip")]
        np.save(pool_path, np.array(pool, dtype=object), allow_pickle=True)
    order = list(range(len(speech)))
    random.Random(f"{seed}:order").shuffle(order)
    n_valid = max(1, int(len(order) * valid_fraction))
    names = []
    for k, i in enumerate(tqdm(order, desc="mixtures", unit="track")):
        split = "valid" if k < n_valid else "train"
        ex = speech[i]
        folder = os.path.join(out, split, ex["id"])
        names.append(f"{split}/{ex['id']}")
        if os.path.exists(os.path.join(folder, "mixture.wav")):
            continue
        voice, rate = sf.read(ex["path"], dtype="float32")
        if rate != sample_rate:
            voice = soxr.resample(voice, rate, sample_rate).astype(np.float32)
        rng = random.Random(f"{seed}:{ex['id']}")
        clip = pool[rng.randrange(len(pool))]
        start = rng.randrange(max(1, len(clip) - len(voice)))
        music = np.resize(clip[start:start + len(voice)], len(voice)).astype(np.float32)
        snr = rng.uniform(*snr_db)
        gain = np.sqrt(np.mean(voice ** 2) / max(np.mean(music ** 2), 1e-10) / 10 ** (snr / 10))
        music = music * gain
        mixture = voice + music
        peak = max(np.abs(mixture).max(), 1e-6)
        scale = min(1.0, 0.95 / peak)
        os.makedirs(folder, exist_ok=True)
        _save(os.path.join(folder, "speech.wav"), voice * scale, sample_rate)
        _save(os.path.join(folder, "music.wav"), music * scale, sample_rate)
        _save(os.path.join(folder, "mixture.wav"), mixture * scale, sample_rate)
    _write_manifest_last(os.path.join(out, "tracks.txt"), names)
    return f"{out}: {len(names) - n_valid} train and {n_valid} valid tracks at {sample_rate} Hz"
