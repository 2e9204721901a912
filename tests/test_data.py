"""Readers, resumable order and pipelines on small corpora made in the test, malformed ones included."""

import json
import os

import gin
import numpy as np
import pytest
import tensorflow as tf

from tfaudio.data import readers
from tfaudio.data.order import index_stream
from tfaudio.data.pipeline import AudioData, SeparationData, split_examples

import audio_files
from audio_files import tone, write


def test_ljspeech_skips_missing_file_and_non_utf8_line(tmp_path):
    root = audio_files.ljspeech(str(tmp_path))
    with open(os.path.join(root, "metadata.csv"), "ab") as f:
        f.write(b"ghost|No audio.|no audio\n")
        f.write(b"bad|caf\xe9|caf\xe9\n")
    corpus = readers.read_ljspeech(root)
    assert len(corpus.examples) == 6 and corpus.examples[0]["text"] == "text 0"
    reasons = " ".join(r for _, r in corpus.skipped)
    assert "ghost.wav is missing" in reasons and "not valid UTF-8" in reasons


def test_probe_drops_bad_and_long_files_and_fails_past_fraction(tmp_path):
    root = audio_files.ljspeech(str(tmp_path), n=4)
    open(os.path.join(root, "wavs", "u0.wav"), "wb").close()  # empty file
    write(os.path.join(root, "wavs", "u1.wav"), tone(seconds=30.0))  # far beyond max_seconds
    corpus = readers.probe_durations(readers.read_ljspeech(root), max_seconds=5.0)
    assert len(corpus.examples) == 2 and corpus.too_long == 1 and len(corpus.skipped) == 1
    with pytest.raises(readers.CorpusError, match="more than max_bad_fraction"):
        corpus.check(max_bad_fraction=0.2)


def test_manifests_resolve_relative_paths(tmp_path):
    write(str(tmp_path / "a" / "x.wav"), tone())
    (tmp_path / "m.csv").write_text("path,label,speaker\na/x.wav,dog,s1\nmissing.wav,cat,s2\n")
    csv_corpus = readers.read_manifest(str(tmp_path / "m.csv"))
    assert csv_corpus.examples[0]["path"] == str(tmp_path / "a" / "x.wav")
    assert csv_corpus.labels == ["dog"] and len(csv_corpus.skipped) == 1
    (tmp_path / "m.jsonl").write_text(json.dumps({"path": "a/x.wav", "text": "hi"}) + "\n{bad\n")
    jsonl = readers.read_manifest(str(tmp_path / "m.jsonl"))
    assert jsonl.examples[0]["text"] == "hi" and "invalid JSON" in jsonl.skipped[0][1]


def test_class_folders(tmp_path):
    for label in ("yes", "no"):
        write(str(tmp_path / "train" / label / "a.wav"), tone())
    corpus = readers.read_class_folders(str(tmp_path), "train")
    assert corpus.labels == ["no", "yes"] and sorted(e["label"] for e in corpus.examples) == [0, 1]


def test_index_stream_resumes_exactly():
    full = [int(e["index"]) for e in index_stream(10, seed=3).take(25)]
    resumed = [int(e["index"]) for e in index_stream(10, seed=3, start=13).take(12)]
    assert resumed == full[13:]
    assert sorted(full[:10]) == list(range(10)) and full[:10] != full[10:20]


def test_split_never_leaks():
    examples = [{"id": f"u{i}"} for i in range(200)]
    train, val = split_examples(examples, 0.1)
    assert not {e["id"] for e in train} & {e["id"] for e in val} and 5 < len(val) < 40
    assert split_examples(examples, 0.1)[1] == val


def test_separation_pipeline(tmp_path):
    root = audio_files.mixtures(str(tmp_path))
    gin.parse_config(["audio_geometry.sample_rate = 8000"])
    data = SeparationData(data_dir=root, segment_seconds=0.5, val_seconds=1.0)
    batch = next(iter(data.train(4, seed=0)))
    assert batch["mixture"].shape == (4, 4000) and batch["target"].shape == (4, 4000)
    val = next(iter(data.validation(2)))
    assert val["mixture"].shape == (2, 8000)


def test_separation_pipeline_survives_a_corrupt_track(tmp_path):
    root = audio_files.mixtures(str(tmp_path), n_train=10)
    gin.parse_config(["audio_geometry.sample_rate = 8000"])
    data = SeparationData(data_dir=root, segment_seconds=0.5, samples_per_track=1)
    os.truncate(os.path.join(root, "train", "t3", "mixture.wav"), 60)  # corrupt after probing
    batches = list(data.train(3, seed=0).take(5))
    assert len(batches) == 5 and len(data.failures.paths) == 1


def test_audio_data_padded_batches_with_lengths_and_features(tmp_path):
    root = audio_files.ljspeech(str(tmp_path), n=12)
    write(os.path.join(root, "wavs", "u0.wav"), tone(seconds=0.9))
    gin.parse_config(["audio_geometry.sample_rate = 8000", "audio_geometry.n_fft = 256",
                      "audio_geometry.hop_length = 64", "audio_geometry.n_mels = 20"])
    data = AudioData(data_dir=root, val_fraction=0.0)
    batch = next(iter(data.train(12, seed=0)))
    assert batch["audio"].shape == (12, 7200)
    assert sorted(batch["length"].numpy().tolist())[-1] == 7200 and min(batch["length"]) == 3200
    mel = AudioData(data_dir=root, val_fraction=0.0, feature="log_mel", fixed_seconds=0.5, pad_method="wrap")
    out = next(iter(mel.train(2, seed=0)))
    assert out["audio"].shape == (2, 63, 20) and np.all(np.isfinite(out["audio"].numpy()))


def test_bucketing_and_data_percentage(tmp_path):
    root = audio_files.ljspeech(str(tmp_path), n=40)
    gin.parse_config(["audio_geometry.sample_rate = 8000"])
    part = AudioData(data_dir=root, val_fraction=0.0, data_percentage=0.5)
    assert 8 < len(part.train_corpus.examples) < 32
    bucketed = AudioData(data_dir=root, val_fraction=0.0, bucket_boundaries=(0.3,))
    assert next(iter(bucketed.train(4, seed=0)))["audio"].shape[0] == 4
    assert isinstance(bucketed.train(4, seed=0), tf.data.Dataset)
