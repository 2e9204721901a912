"""Readers, resumable order and pipelines on small corpora made in the test, malformed ones included."""

import json
import os

import gin
import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from tfaudio.data import readers
from tfaudio.data.audio_data import AudioData
from tfaudio.data.order import index_stream
from tfaudio.data.pipeline import split_examples
from tfaudio.data.separation_data import SeparationData

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


def _varied_lengths(root, n=40):
    """An LJSpeech corpus whose clips last 0.1 to 0.88 s."""
    rows = []
    for i in range(n):
        write(os.path.join(root, "wavs", f"v{i}.wav"), tone(seconds=0.1 + 0.02 * i))
        rows.append(f"v{i}|Clip {i}.|clip {i}")
    with open(os.path.join(root, "metadata.csv"), "w") as f:
        f.write("\n".join(rows) + "\n")
    return root


def test_bucketing_groups_lengths_and_resumes_batch_for_batch(tmp_path):
    root = _varied_lengths(str(tmp_path))
    gin.parse_config(["audio_geometry.sample_rate = 8000"])
    part = AudioData(data_dir=root, val_fraction=0.0, data_percentage=0.5)
    assert 8 < len(part.train_corpus.examples) < 32
    data = AudioData(data_dir=root, val_fraction=0.0, bucket_boundaries=(0.3, 0.6))
    whole = [b["length"].numpy() for b in data.train(4, seed=1).take(24)]
    buckets = [set(np.digitize(b / 8000, [0.3, 0.6]).tolist()) for b in whole]
    # Three buckets; only an epoch's leftovers (sorted by length) may straddle two, twice an epoch at most.
    assert set().union(*buckets) == {0, 1, 2} and sum(len(b) > 1 for b in buckets) <= 2 * 3
    resumed = [b["length"].numpy() for b in data.train(4, seed=1, start=7 * 4).take(17)]
    for a, b in zip(whole[7:], resumed):
        np.testing.assert_array_equal(a, b)


def test_truncated_and_implausible_clips_are_skipped_by_path(tmp_path):
    from tfaudio.data.text import CharVocabulary

    root = audio_files.ljspeech(str(tmp_path), n=12, seconds=0.6)
    truncated = os.path.join(root, "wavs", "u2.wav")
    os.truncate(truncated, 44 + 10)  # the header still promises 0.6 s
    write(os.path.join(root, "wavs", "u5.wav"), tone(seconds=0.05))  # 50 ms for "text five" (9 characters + end)
    gin.parse_config(["audio_geometry.sample_rate = 8000"])
    data = AudioData(data_dir=root, val_fraction=0.0, text_encoder=CharVocabulary(), max_bad_fraction=0.2)
    reasons = dict(data.train_corpus.skipped)
    assert len(data.train_corpus.examples) == 10 and set(reasons) == {truncated, os.path.join(root, "wavs", "u5.wav")}
    assert "truncated: its header promises 4800 samples, the file holds 5" in reasons[truncated]
    assert "cannot say its 10 tokens" in reasons[os.path.join(root, "wavs", "u5.wav")]


def test_an_unreadable_validation_split_is_an_error_not_silence(tmp_path):
    root = audio_files.ljspeech(str(tmp_path), n=12)
    gin.parse_config(["audio_geometry.sample_rate = 8000"])
    val_ids = [e["id"] for e in AudioData(data_dir=root, val_fraction=0.3).val_corpus.examples]
    for ident in val_ids:
        open(os.path.join(root, "wavs", f"{ident}.wav"), "wb").close()
    with pytest.raises(readers.CorpusError, match="no usable examples"):
        AudioData(data_dir=root, val_fraction=0.3)


def test_separation_data_skips_bad_files_but_not_bugs(tmp_path, monkeypatch):
    from tfaudio.data import separation_data

    root = audio_files.mixtures(str(tmp_path))
    gin.parse_config(["audio_geometry.sample_rate = 8000"])
    data = SeparationData(data_dir=root, segment_seconds=0.5)

    def broken(*args, **kwargs):
        raise TypeError("a bug, not a bad file")

    monkeypatch.setattr(separation_data, "read_audio", broken)
    with pytest.raises(tf.errors.InvalidArgumentError, match="a bug, not a bad file"):
        next(iter(data.train(2, seed=0)))


def test_half_built_mixtures_are_refused_and_a_rebuild_finishes_the_same_corpus(tmp_path, monkeypatch):
    from tfaudio.data import corpora

    speech = audio_files.ljspeech(str(tmp_path / "speech"), n=8)
    pool = np.array([np.random.default_rng(i).normal(0, 0.1, 16000).astype(np.float32) for i in range(3)],
                    dtype=object)
    for name in ("whole", "resumed"):
        os.makedirs(tmp_path / name)
        np.save(tmp_path / name / "music_pool.npy", pool, allow_pickle=True)
    corpora.build_mixtures(str(tmp_path / "whole"), speech, valid_fraction=0.25)
    saves, real_save = [], corpora._save

    def interrupted(path, audio, rate):
        if len(saves) == 10:
            raise KeyboardInterrupt
        saves.append(path)
        real_save(path, audio, rate)

    monkeypatch.setattr(corpora, "_save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        corpora.build_mixtures(str(tmp_path / "resumed"), speech, valid_fraction=0.25)
    with pytest.raises(readers.CorpusError, match="half-built"):
        readers.read_musdb(str(tmp_path / "resumed"), "train")
    monkeypatch.setattr(corpora, "_save", real_save)
    corpora.build_mixtures(str(tmp_path / "resumed"), speech, valid_fraction=0.25)
    files = sorted(os.path.relpath(os.path.join(d, f), tmp_path / "whole")
                   for d, _, fs in os.walk(tmp_path / "whole") for f in fs)
    assert files == sorted(os.path.relpath(os.path.join(d, f), tmp_path / "resumed")
                           for d, _, fs in os.walk(tmp_path / "resumed") for f in fs)
    for name in files:
        if name.endswith(".wav"):
            np.testing.assert_array_equal(sf.read(tmp_path / "whole" / name)[0],
                                          sf.read(tmp_path / "resumed" / name)[0], err_msg=name)
    assert len(readers.read_musdb(str(tmp_path / "resumed"), "train", ("speech", "music")).examples) == 6


def test_separation_augmentation_mixes_gained_stems_repeatably(tmp_path):
    root = audio_files.mixtures(str(tmp_path), n_train=6)
    gin.parse_config(["audio_geometry.sample_rate = 8000"])
    data = SeparationData(data_dir=root, segment_seconds=0.5, samples_per_track=2, channels=2,
                          augment_gain=(0.25, 1.25), channel_swap=True, remix=True)
    first = list(data.train(4, seed=3).take(3))
    again = list(data.train(4, seed=3, start=4).take(2))  # resumed one batch later: the same examples
    for a, b in zip(first[1:], again):
        np.testing.assert_array_equal(a["mixture"].numpy(), b["mixture"].numpy())
    for batch in first:
        assert batch["mixture"].shape == (4, 4000, 2)
        for mix, target in zip(batch["mixture"].numpy(), batch["target"].numpy()):
            music = mix - target
            assert np.abs(music).max() > 0.01  # the other stem is in the mixture
            peak = np.abs(target).max()  # a 0.3-amplitude tone at a gain in [0.25, 1.25]
            assert 0.25 * 0.3 * 0.98 <= peak <= 1.25 * 0.3 * 1.02
