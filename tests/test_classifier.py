"""Spectrogram classifiers: backbones at their published parameter counts, MFCCs against
NumPy, normalisation, crops that keep their file's label, error rates of the confusion
matrix, the parameter budget, and `classify` on files made here."""

import os
import subprocess
import sys

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

from tfaudio import compose as training
from tfaudio import config
from tfaudio.audio import features
from tfaudio.data.audio_data import AudioData
from tfaudio.errors import ConfigError
from tfaudio.models.backbones import BACKBONES, make_backbone
from tfaudio.models.classifier import Classifier
from tfaudio.models.weights import parameter_count
from tfaudio.tasks.classification import macro_f1

import audio_files

GEOMETRY = ["audio_geometry.sample_rate = 8000", "audio_geometry.n_fft = 256", "audio_geometry.win_length = 256",
            "audio_geometry.hop_length = 80", "audio_geometry.n_mels = 32"]


@pytest.fixture(autouse=True)
def geometry(_clear_gin):  # after conftest's clearing, which also clears afterwards
    gin.parse_config(GEOMETRY)


# torchvision's resnet18 and regnet_y_800mf, keras.applications' ResNet50 and
# EfficientNetV2S (trainable parameters), each with a 1,000-class top on 3 channels.
PUBLISHED = {"resnet18": 11_689_512, "regnety800mf": 6_432_512, "resnet50": 25_583_592,
             "efficientnetv2s": 21_458_488}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_backbones_have_their_published_parameter_counts(name):
    backbone = make_backbone(name, 3)
    features = backbone(tf.zeros([1, 64, 64, 3]))
    assert parameter_count(backbone) + features.shape[-1] * 1000 + 1000 == PUBLISHED[name]


@pytest.mark.parametrize("name", BACKBONES)
def test_every_backbone_learns_a_batch_on_one_channel(name):
    keras.utils.set_random_seed(0)
    model = Classifier(num_classes=3, backbone=name, head_units=8)
    wave = tf.constant(np.random.default_rng(0).normal(0, 0.3, (4, 4000)), tf.float32)
    labels = tf.constant([0, 1, 2, 0])
    model(wave)
    optimizer = keras.optimizers.Adam(3e-4)

    def step():
        with tf.GradientTape() as tape:
            logits = model(wave, training=True)
            loss = tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    # Eager, but for the LSTM: tracing the large CNNs takes longer than their five eager
    # steps (EfficientNetV2-S: 39 s against 11), an eager LSTM steps each frame in Python.
    if name == "rnn":
        step = tf.function(step)
    before = [v.numpy() for v in model.backbone.trainable_variables]
    losses = [float(step()) for _ in range(5)]
    moved = [not np.array_equal(b, v.numpy()) for b, v in zip(before, model.backbone.trainable_variables)]
    assert np.mean(moved) > 0.9, f"{moved.count(False)} of {len(moved)} backbone variables never moved"
    # Five updates on one batch: its loss falls.
    assert np.all(np.isfinite(losses)) and losses[-1] < 0.8 * losses[0], losses


def test_parameter_budget_is_a_clear_error():
    with pytest.raises(ConfigError, match="Classifier.max_params=1,000,000"):
        Classifier(num_classes=3, backbone="resnet18", max_params=1_000_000)(tf.zeros([1, 8000]))


def test_mfcc_equals_the_dct_computed_in_numpy():
    log_mel = np.random.default_rng(0).normal(size=(5, 32)).astype(np.float32)
    n = log_mel.shape[-1]
    k, m = np.arange(n)[:, None], np.arange(n)[None]
    basis = np.sqrt(2.0 / n) * np.cos(np.pi * k * (2 * m + 1) / (2 * n))  # DCT-II, HTK scaling
    np.testing.assert_allclose(features.mfcc(tf.constant(log_mel)).numpy(), log_mel @ basis.T, atol=1e-4)


@pytest.mark.parametrize("normalization", ["separate", "joint"])
def test_mel_and_mfcc_channels_are_normalised_separately_or_together(tmp_path, normalization):
    config.parse([], GEOMETRY + ["Classifier.features = 'both'", f"Classifier.normalization = '{normalization}'"],
                 finalize=False)
    from tfaudio.tasks.classification import ClassificationTask

    data = AudioData(data_dir=audio_files.class_folders(str(tmp_path / "c")), layout="class_folders",
                     train_split="train", val_split="valid", fixed_seconds=0.5)
    task = ClassificationTask(stats_examples=32)
    task.initialize(data, str(tmp_path))
    model = Classifier(num_classes=3, features="both", normalization=normalization, head_units=8)
    model(tf.zeros([1, 4000]))
    task.initialize_model(model)
    batch = next(iter(data.train(32, seed=0)))["audio"]
    normalised = model.features(batch).numpy().reshape(-1, 2)
    raw = model.features.raw(batch).numpy().reshape(-1, 2)
    assert abs(raw[:, 0].mean() - raw[:, 1].mean()) > 1.0  # the channels differ before normalisation
    if normalization == "separate":
        np.testing.assert_allclose(normalised.mean(axis=0), [0, 0], atol=0.1)
        np.testing.assert_allclose(normalised.std(axis=0), [1, 1], atol=0.1)
    else:
        np.testing.assert_allclose(normalised.mean(), 0, atol=0.1)
        assert abs(normalised[:, 0].mean() - normalised[:, 1].mean()) > 0.3


def test_per_clip_normalisation_spans_zero_to_one_per_clip_and_none_leaves_features_raw():
    from tfaudio.models.classifier import SpectrogramFeatures

    rng = np.random.default_rng(0)
    t = np.arange(4000) / 8000
    # Clip 0 is loud with a silent second half (floored 80 dB below its peak); clip 1 is quiet.
    loud = np.where(t < 0.25, 0.5 * np.sin(2 * np.pi * 440 * t), 0.0)
    waves = tf.constant(np.stack([loud, 1e-3 * rng.normal(size=4000)]).astype(np.float32))
    per_clip, none = SpectrogramFeatures("both", "per_clip"), SpectrogramFeatures("both", "none")
    raw = none.raw(waves).numpy()
    np.testing.assert_array_equal(none(waves).numpy(), raw)
    x = per_clip(waves).numpy()
    np.testing.assert_allclose(x.min(axis=(1, 2)), 0.0, atol=1e-6)
    np.testing.assert_allclose(x.max(axis=(1, 2)), 1.0, atol=1e-6)
    floor = raw[0, ..., 0].max() - 80.0
    assert raw[0, ..., 0].min() < floor  # the silence lies below the floor, which per_clip clips it to
    expected = (np.maximum(raw[0, ..., 0], floor) - floor) / 80.0
    np.testing.assert_allclose(x[0, ..., 0], expected, atol=1e-5)


def test_label_smoothing_is_cross_entropy_against_the_smoothed_targets():
    from tfaudio.tasks.classification import ClassificationTask

    probs = tf.constant([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    batch = {"label": tf.constant([0, 1])}
    loss, _ = ClassificationTask(label_smoothing=0.3)._cross_entropy(probs, batch)
    target = np.array([[0.8, 0.1, 0.1], [0.1, 0.8, 0.1]])  # 1 - 0.3 + 0.3 / 3 on the label
    np.testing.assert_allclose(loss.numpy(), -(target * np.log(probs.numpy())).sum(-1), rtol=1e-5)


@pytest.mark.parametrize("mode", ["examples", "average"])
def test_crops_keep_their_files_label(tmp_path, mode):
    data = AudioData(data_dir=audio_files.class_folders(str(tmp_path / "c")), layout="class_folders",
                     train_split="train", val_split="valid", fixed_seconds=0.2, crops_per_file=3,
                     crop_mode=mode, pad_method="wrap")
    for batch in (next(iter(data.train(6, seed=1))), next(iter(data.validation(6)))):
        audio, labels = batch["audio"].numpy(), batch["label"].numpy()
        assert audio.shape == ((6, 1600) if mode == "examples" else (6, 3, 1600)) and labels.shape == (6,)
        peak = np.abs(audio).max(axis=-1)  # class k was recorded at amplitude 0.1 (k + 1)
        expected = 0.1 * (labels + 1)
        np.testing.assert_allclose(peak, expected if mode == "examples" else expected[:, None] + 0 * peak,
                                   atol=0.01)


def test_crops_as_examples_resume_crop_for_crop(tmp_path):
    data = AudioData(data_dir=audio_files.class_folders(str(tmp_path / "c")), layout="class_folders",
                     train_split="train", val_split="valid", fixed_seconds=0.2, crops_per_file=3)
    whole = np.concatenate([b["audio"].numpy() for b in data.train(4, seed=2).take(3)])
    resumed = next(iter(data.train(4, seed=2, start=5)))["audio"].numpy()
    np.testing.assert_array_equal(resumed, whole[5:9])


def test_macro_f1_of_a_known_confusion_matrix():
    confusion = np.array([[3, 1], [0, 2]])  # class 0: P 1, R .75; class 1: P 2/3, R 1
    assert macro_f1(confusion) == pytest.approx((2 * 0.75 / 1.75 + 2 * (2 / 3) / (5 / 3)) / 2)


@pytest.fixture(scope="module")
def classifier_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cls")
    data = audio_files.class_folders(str(root / "classes"))
    run = str(root / "run")
    config.parse(["gin/classifier_digits.gin"],
                 [f"data_dir = '{data}'", "num_classes = 3", "crop_seconds = 0.5", "batch_size = 4",
                  "train_steps = 4", "eval_every = 4", "Classifier.head_units = 8",
                  "AudioData.validate_train_pct = 0.5", "ClassificationTask.stats_examples = 8"], finalize=False)
    trainer = training.train(run, tracker="none")[0]
    return run, trainer


def test_evaluation_rows_carry_accuracy_f1_and_the_confusion_matrix(classifier_run):
    from tfaudio.run_dir import read_metrics

    run, _ = classifier_run
    rows = {r["split"]: r for r in read_metrics(run) if "split" in r}
    assert set(rows) >= {"val", "train_subset"}
    val = rows["val"]
    confusion = np.array(val["confusion"])
    assert confusion.shape == (3, 3) and confusion.sum() == val["examples"] == 12
    assert val["accuracy"] == pytest.approx(np.trace(confusion) / confusion.sum())
    model = [r for r in read_metrics(run) if r.get("event") == "model"][0]
    assert 0 < model["backbone_parameters"] < model["parameters"]


def test_classify_prints_labels_for_files_and_skips_bad_ones(classifier_run, tmp_path):
    run, trainer = classifier_run
    wave = audio_files.tone(1.3, 8000, 350, 0.2)  # longer than a crop: three crops averaged
    good = audio_files.write(str(tmp_path / "good.wav"), wave, subtype="FLOAT")
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF....WAVEfmt garbage")
    proc = subprocess.run([sys.executable, "-m", "tfaudio.classify", f"--model_dir={run}", "--noema", "--top_k=3",
                           "--input", good, str(corrupt)], capture_output=True, text=True, timeout=300)  # as *.wav
    assert proc.returncode == 1 and "corrupt.wav" in proc.stderr
    path, *ranked = proc.stdout.strip().split("\t")
    assert path == good and len(ranked) == 3
    probs = trainer.task.classify(trainer.model, wave, 0.5, "zeros")
    best = int(np.argmax(probs))
    assert ranked[0] == f"c{best} {probs[best]:.3f}"
    assert os.path.exists(os.path.join(run, "labels.json"))


def test_multi_label_manifest_loss_and_macro_f1(tmp_path):
    from tfaudio.tasks.classification import ClassificationTask

    rows = ["path,label"]
    for i, label in enumerate(["dog;rain", "rain", "car;dog", "car"]):
        rows.append(f"{audio_files.write(str(tmp_path / f'{i}.wav'), audio_files.tone(0.3, 8000, 300 + 50 * i))},"
                    f"\"{label}\"")
    (tmp_path / "list.csv").write_text("\n".join(rows) + "\n")
    data = AudioData(data_dir=str(tmp_path / "list.csv"), layout="manifest", val_fraction=0.0, fixed_seconds=0.2)
    assert data.labels == ["car", "dog", "rain"]
    batch = next(iter(data.train(4, seed=0)))
    by_label = {tuple(s) for s in batch["label_set"].numpy().astype(int).tolist()}
    assert by_label == {(0, 1, 1), (0, 0, 1), (1, 1, 0), (1, 0, 0)}

    class Fixed:  # logits: car yes, dog no, rain yes, for every clip
        def __call__(self, audio, training=False):
            return tf.constant([[2.0, -1.0, 0.5]] * int(audio.shape[0]))

    task = ClassificationTask(multi_label=True)
    loss, _ = task.loss(Fixed(), batch, training=False)
    p = 1 / (1 + np.exp(-np.array([2.0, -1.0, 0.5])))
    target = batch["label_set"].numpy()
    expected = -(target * np.log(p) + (1 - target) * np.log(1 - p)).sum(axis=1)
    np.testing.assert_allclose(loss.numpy(), expected, rtol=1e-5)
    means = {k: np.asarray(v).mean(axis=0) for k, v in task.metrics(Fixed(), batch).items()}
    metrics = task.corpus_metrics({**means, "examples": 4.0})
    # predicted {car, rain} for all four: car TP 2 FP 2; dog FN 2; rain TP 2 FP 2
    assert metrics["label_counts"] == {"true_positive": [2, 0, 2], "false_positive": [2, 0, 2],
                                       "false_negative": [0, 2, 0]}
    assert metrics["macro_f1"] == pytest.approx((2 * 2 / 6 + 0 + 2 * 2 / 6) / 3)
    assert metrics["accuracy"] == 0.0
