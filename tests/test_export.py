"""Export: every model family's tiny run exported (one by `python -m tfaudio.export`, the
others by tfaudio.exporter.export, which that command calls), then all run by
tests/export_check.py in one process that never imports tfaudio, on audio or text made
here, against tfaudio's own inference (SavedModel to 1e-4, TFLite to 1e-3)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tfaudio import exporter
from tfaudio.experiment import restore_for_inference

CHECK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "export_check.py")


def expected_cases(run: str) -> dict:
    """Inputs made here and what tfaudio's own inference makes of them, per signature."""
    model, task = restore_for_inference(run)
    rng = np.random.default_rng(0)
    audio = (0.3 * rng.normal(size=(2, 6000))).astype(np.float32)
    name = type(model).__name__
    if name in ("Tacotron", "DurationTacotron"):
        ids = task.vocabulary.encode("Press one.")
        text_ids, length = np.array([ids], np.int32), np.array([len(ids)], np.int32)
        out = task.infer(model, tf.constant(text_ids), tf.constant(length), task.max_decoder_steps)
        frames = int(out["steps"][0]) * model.reduction
        spectrum = out["mel_post"][0, :frames].numpy()
        return {"synthesize/in/text_ids": text_ids, "synthesize/in/text_length": length,
                "synthesize/out/spectrum": out["mel_post"].numpy(), "synthesize/out/frames": np.array([frames]),
                "to_audio/in/spectrum": spectrum, "to_audio/out/audio": task.to_audio(out, 0, frames)}
    if name in ("AudioUNet", "HybridUNet", "OpenUnmix"):
        cases = {"separate/in/audio": audio,
                 "separate/out/target": np.stack([task.separate(model, a, 6000 / task.sample_rate, 0.0)
                                                  for a in audio])}
        if name == "OpenUnmix" and model.unidirectional:  # the stream of the reflect-padded signal
            n_fft, hop = model.geometry.n_fft, model.geometry.hop_length
            x = audio[0]
            padded = np.concatenate([x[1:n_fft // 2 + 1][::-1], x, x[-n_fft // 2 - 1:-1][::-1]])[:, None]
            fed = len(padded) // hop * hop
            count = fed - (n_fft - hop) - n_fft // 2  # samples the stream has finished
            cases.update({"stream_step/in/audio": padded[:fed],
                          "stream_step/out/audio": cases["separate/out/target"][0][:count, None]})
        return cases
    if name == "DilatedCTC":
        length = np.array([6000, 4100], np.int32)
        audio[1, 4100:] = 0
        logits = model(tf.constant(audio), tf.constant(length)).numpy()
        texts = [task.transcribe(model, a[:n]).encode() for a, n in zip(audio, length)]
        return {"transcribe/in/audio": audio, "transcribe/in/length": length, "transcribe/out/logits": logits,
                "transcribe/out/text": np.array(texts)}
    return {"classify/in/audio": audio, "classify/out/probabilities": task.probabilities(model, audio).numpy()}


# (gin file, format): TFLite is converted (and checked, where it needs no TensorFlow ops)
# for the families whose conversion takes seconds; the others' is measured by
# benchmarks/export_speed.py.
FAMILIES = [("tacotron_8khz.gin", "saved_model"), ("tacotron_8khz_attention.gin", "saved_model"),
            ("audio_unet.gin", "saved_model"), ("hybrid_unet.gin", "saved_model"),
            ("openunmix_8khz_uni.gin", "saved_model"), ("ctc_dilated_small.gin", "both"),
            ("classifier_digits.gin", "both")]


COMMAND_LINE = "classifier_digits.gin"  # exported by `python -m tfaudio.export`


def export_and_cases(run: str, folder, gin_file: str, fmt: str) -> tuple[dict, list]:
    """The export of `run` in folder/export and its check jobs (SavedModel, and TFLite for
    the signatures converted with builtin ops alone: tf.lite.Interpreter in tensorflow-cpu
    has no Flex delegate); (manifest, jobs)."""
    out = folder / "export"
    if gin_file == COMMAND_LINE:
        proc = subprocess.run([sys.executable, "-m", "tfaudio.export", f"--model_dir={run}", f"--output={out}",
                               f"--format={fmt}"], capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert f"wrote {out}" in proc.stdout and "classify(audio) -> probabilities" in proc.stdout, proc.stdout
    else:
        exporter.export(run, str(out), fmt=fmt)
    manifest = json.loads((out / "manifest.json").read_text())
    cases = expected_cases(run)
    np.savez(folder / "cases.npz", **cases)
    jobs = [{"name": gin_file, "export_dir": str(out), "cases": str(folder / "cases.npz"), "tflite": False}]
    converted = [s for s, r in manifest["tflite"].items() if "file" in r and not r["tensorflow_ops"]]
    if converted:
        lite = {k: v for k, v in cases.items() if k.split("/")[0] in converted and v.dtype.kind not in "SUO"
                and not k.startswith("stream_step/")}
        np.savez(folder / "lite.npz", **lite)
        jobs.append({"name": f"{gin_file} tflite", "export_dir": str(out), "cases": str(folder / "lite.npz"),
                     "tflite": True})
    return manifest, jobs


@pytest.fixture(scope="module")
def checked(tiny_runs, tmp_path_factory) -> tuple[dict, dict]:
    """({gin file: manifest}, {check job: its mismatches}) for every family in FAMILIES."""
    root = tmp_path_factory.mktemp("export")
    manifests, jobs = {}, []
    for gin_file, fmt in FAMILIES:
        folder = root / gin_file
        folder.mkdir()
        manifests[gin_file], family_jobs = export_and_cases(tiny_runs(gin_file)[0], folder, gin_file, fmt)
        jobs += family_jobs
    (root / "jobs.json").write_text(json.dumps(jobs))
    check = subprocess.run([sys.executable, CHECK, str(root / "jobs.json"), str(root / "report.json")],
                           capture_output=True, text=True, timeout=600)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
    return manifests, json.loads((root / "report.json").read_text())


@pytest.mark.parametrize("gin_file,fmt", FAMILIES, ids=[f for f, _ in FAMILIES])
def test_export_runs_without_tfaudio_and_matches_its_inference(checked, gin_file, fmt):
    manifests, report = checked
    manifest = manifests[gin_file]
    assert manifest["sample_rate"] == 8000 and manifest["signatures"]
    assert fmt == "saved_model" or all("file" in r for r in manifest["tflite"].values())
    assert report[gin_file] == []
    assert report.get(f"{gin_file} tflite", []) == []
