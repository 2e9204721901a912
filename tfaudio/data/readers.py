"""Readers for the layouts researchers already have; each returns a `Corpus`.

- LJSpeech: `metadata.csv` rows `id|text|normalized[|speaker]`, audio in `wavs/<id>.wav`.
- MUSDB18-HQ / Open-Unmix: `<root>/<split>/<track>/{mixture,<stem>...}.wav`.
- Folder per class: `<root>[/<split>]/<class>/*.wav`.
- Manifest: CSV with a header (path[,text][,label][,speaker]) or JSONL with those keys;
  relative paths resolve inside the manifest's folder.

Bad rows (missing file, undecodable text) are skipped and counted, never fatal.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os

from absl import logging

from tfaudio.audio.io import AudioReadError, audio_info
from tfaudio.errors import ConfigError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
BUILDING = ".building"  # in a corpus folder while tfaudio.prepare is still writing it


class CorpusError(ConfigError):
    """A corpus that cannot be used; the message names the folder or file and the fix."""


@dataclasses.dataclass
class Corpus:
    """Examples (dicts with at least "path") and what was skipped, with reasons."""

    root: str
    examples: list
    skipped: list = dataclasses.field(default_factory=list)
    labels: list = dataclasses.field(default_factory=list)
    too_long: int = 0  # files left out by max_seconds

    def skip(self, where: str, reason: str):
        self.skipped.append((where, reason))

    def check(self, max_bad_fraction: float = 0.1) -> "Corpus":
        """Logs what was skipped; fails when more than max_bad_fraction was lost."""
        total = len(self.examples) + len(self.skipped)
        for where, reason in self.skipped[:20]:
            logging.warning("skipped %s: %s", where, reason)
        if len(self.skipped) > 20:
            logging.warning("... and %d more skipped", len(self.skipped) - 20)
        if not self.examples:
            why = [f"{self.too_long} files longer than AudioData.max_seconds"] if self.too_long else []
            if self.skipped:
                why.append(f"{len(self.skipped)} skipped, first {self.skipped[0][0]}: {self.skipped[0][1]}")
            raise CorpusError(f"{self.root}: no usable examples: {'; '.join(why)}" if why else
                              f"{self.root}: no examples; was it prepared with `python -m tfaudio.prepare`?")
        if total and len(self.skipped) / total > max_bad_fraction:
            raise CorpusError(f"{self.root}: {len(self.skipped)} of {total} entries are unusable "
                              f"(more than max_bad_fraction={max_bad_fraction}); first: "
                              f"{self.skipped[0][0]}: {self.skipped[0][1]}")
        return self


def union(corpora: list[Corpus]) -> Corpus:
    """One corpus of the examples (and skipped entries) of several."""
    if len(corpora) == 1:
        return corpora[0]
    return Corpus(" + ".join(c.root for c in corpora), [e for c in corpora for e in c.examples],
                  [s for c in corpora for s in c.skipped], corpora[0].labels)


def _need_dir(root: str, what: str):
    if not os.path.isdir(root):
        raise CorpusError(f"{root}: no such folder ({what}); run `python -m tfaudio.prepare` or "
                          "point the data_dir macro at your copy")
    for folder in (root, os.path.dirname(os.path.normpath(root))):
        if os.path.exists(os.path.join(folder, BUILDING)):
            raise CorpusError(f"{folder}: half-built (its `python -m tfaudio.prepare` was interrupted); "
                              "run the same command again to finish it")


def probe_durations(corpus: Corpus, keys=("path",), max_seconds: float | None = None) -> Corpus:
    """Reads every file's header: drops unreadable files (counted as skipped) and files
    longer than max_seconds (counted and logged separately); sets "duration"."""
    kept, too_long = [], 0
    for ex in corpus.examples:
        try:
            infos = [audio_info(ex[k]) for k in keys]
        except AudioReadError as exc:
            corpus.skip(ex[keys[0]], str(exc))
            continue
        duration = min(i.frames / i.samplerate for i in infos)
        if max_seconds is not None and duration > max_seconds:
            too_long += 1
            continue
        ex["duration"] = duration
        kept.append(ex)
    if too_long:
        logging.info("%s: dropped %d of %d files longer than max_seconds=%s", corpus.root, too_long,
                     len(corpus.examples), max_seconds)
    corpus.examples = kept
    corpus.too_long = too_long
    return corpus


def _read_lines(path: str, corpus: Corpus):
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            try:
                yield number, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                corpus.skip(f"{path}:{number}", "line is not valid UTF-8")


def read_ljspeech(root: str) -> Corpus:
    """LJSpeech layout; the normalized text (third column) is used when present."""
    _need_dir(root, "LJSpeech layout with metadata.csv and wavs/")
    meta = os.path.join(root, "metadata.csv")
    if not os.path.isfile(meta):
        raise CorpusError(f"{meta}: missing; an LJSpeech folder needs metadata.csv with id|text|normalized")
    corpus = Corpus(root, [])
    for number, line in _read_lines(meta, corpus):
        if not line.strip():
            continue
        cols = line.split("|")
        if len(cols) < 2:
            corpus.skip(f"{meta}:{number}", "expected id|text|normalized")
            continue
        path = os.path.join(root, "wavs", cols[0] + ".wav")
        if not os.path.isfile(path):
            corpus.skip(f"{meta}:{number}", f"audio file {path} is missing")
            continue
        text = cols[2] if len(cols) > 2 and cols[2].strip() else cols[1]
        corpus.examples.append({"id": cols[0], "path": path, "text": text,
                                "speaker": cols[3] if len(cols) > 3 else ""})
    return corpus


def read_musdb(root: str, split: str, stems=("speech", "music"), mixture: str = "mixture") -> Corpus:
    """MUSDB18-HQ-like tracks: each example has "path" (the mixture) and one key per stem."""
    folder = os.path.join(root, split)
    _need_dir(folder, f"MUSDB18-HQ layout <root>/{split}/<track>/{mixture}.wav")
    corpus = Corpus(folder, [])
    for track in sorted(os.listdir(folder)):
        tdir = os.path.join(folder, track)
        if not os.path.isdir(tdir):
            continue
        files = {name: os.path.join(tdir, f"{name}.wav") for name in (mixture,) + tuple(stems)}
        missing = [p for p in files.values() if not os.path.isfile(p)]
        if missing:
            corpus.skip(tdir, f"missing {', '.join(os.path.basename(m) for m in missing)}")
            continue
        ex = {"id": track, "path": files[mixture]}
        ex.update({stem: files[stem] for stem in stems})
        corpus.examples.append(ex)
    return corpus


def read_class_folders(root: str, split: str | None = None) -> Corpus:
    """One sub-folder per class; labels are the sorted folder names."""
    folder = os.path.join(root, split) if split else root
    _need_dir(folder, "one sub-folder of audio files per class")
    labels = sorted(d for d in os.listdir(folder) if os.path.isdir(os.path.join(folder, d)))
    corpus = Corpus(folder, [], labels=labels)
    for label_id, label in enumerate(labels):
        for name in sorted(os.listdir(os.path.join(folder, label))):
            if name.lower().endswith(AUDIO_EXTENSIONS):
                corpus.examples.append({"id": f"{label}/{name}", "path": os.path.join(folder, label, name),
                                        "label": label_id, "text": label})
    return corpus


def read_manifest(path: str) -> Corpus:
    """CSV (with header) or JSONL manifest of path[, text][, label][, speaker]; a label of
    several classes is written "a;b"."""
    if not os.path.isfile(path):
        raise CorpusError(f"{path}: manifest not found")
    root = os.path.dirname(os.path.abspath(path))
    corpus = Corpus(path, [])
    rows = []
    if path.endswith(".jsonl"):
        for number, line in _read_lines(path, corpus):
            if line.strip():
                try:
                    rows.append((number, json.loads(line)))
                except json.JSONDecodeError as exc:
                    corpus.skip(f"{path}:{number}", f"invalid JSON ({exc.msg})")
    else:
        lines = [line for _, line in _read_lines(path, corpus)]
        rows = [(i + 2, row) for i, row in enumerate(csv.DictReader(lines))]
    for number, row in rows:
        if not row.get("path"):
            corpus.skip(f"{path}:{number}", "row has no 'path'")
            continue
        audio = row["path"] if os.path.isabs(row["path"]) else os.path.join(root, row["path"])
        if not os.path.isfile(audio):
            corpus.skip(f"{path}:{number}", f"audio file {audio} is missing")
            continue
        ex = {"id": row.get("id", row["path"]), "path": audio, "text": row.get("text", "") or "",
              "speaker": row.get("speaker", "") or ""}
        if row.get("label") not in (None, ""):
            ex["label"] = row["label"]
        corpus.examples.append(ex)
    # "label" may name several classes separated by ";" (multi-label): each example then
    # also gets "label_ids", and "label" is its first class.
    parts = {id(e): [p.strip() for p in str(e["label"]).split(";") if p.strip()] for e in corpus.examples
             if "label" in e}
    labels = sorted({p for names in parts.values() for p in names})
    multi = any(len(names) > 1 for names in parts.values())
    for ex in corpus.examples:
        if "label" in ex:
            ids = [labels.index(p) for p in parts[id(ex)]]
            ex["label"] = ids[0]
            if multi:
                ex["label_ids"] = ids
    corpus.labels = labels
    return corpus


def expand_inputs(inputs: list[str]) -> list[str]:
    """The audio files named by files, folders (their audio files, sorted) and manifests
    (.csv with a `path` column, or .jsonl) on an inference command line; a manifest's
    unusable rows are logged and left out."""
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            paths += sorted(os.path.join(item, f) for f in os.listdir(item) if f.lower().endswith(AUDIO_EXTENSIONS))
        elif item.endswith((".csv", ".jsonl")):
            corpus = read_manifest(item)
            for where, reason in corpus.skipped:
                logging.warning("skipped %s: %s", where, reason)
            paths += [e["path"] for e in corpus.examples]
        else:
            paths.append(item)
    return paths
