"""The export of a trained run (`python -m tfaudio.export` is its command line): restores
the run (EMA weights when kept, unless use_ema is off) and writes an artefact that runs
without tfaudio: the audio front end (STFT, features, normalisation statistics) is
inside the graph, so callers pass samples or text ids. Each family's signatures come
from its task (`Task.export_endpoints`):

- Tacotron: synthesize(text_ids, text_length) -> spectrum, alignment, frames;
  to_audio(spectrum) -> audio (Griffin-Lim); vocabulary.txt beside it.
- U-Net and Open-Unmix separators: separate(audio) -> target, residual.
- CTC recogniser: transcribe(audio, length) -> logits, frames, text (greedy); vocabulary.txt.
- Classifiers: classify(audio) -> probabilities; labels.txt.

DIR/saved_model is a TensorFlow SavedModel (`tf.saved_model.load(DIR + "/saved_model")
.signatures[...]` or `.<name>(...)`); with tflite, DIR/<signature>.tflite per signature
that converts (with TFLite's builtin ops when it can, else with TensorFlow ops, which
need the Flex delegate; a signature that does not convert is named with the converter's
reason in the manifest). DIR/manifest.json
records the sample rate, geometry, signatures with input and output shapes and dtypes,
the assets, the tfaudio version and the run's git commit.
"""

from __future__ import annotations

import dataclasses
import json
import os


def _spec(tensor_spec) -> dict:
    return {"shape": [None if d is None else int(d) for d in tensor_spec.shape], "dtype": tensor_spec.dtype.name}


def export(run_dir: str, output: str, checkpoint: str | None = None, use_ema: bool = True,
           fmt: str = "saved_model") -> dict:
    """Writes the export of `run_dir` to `output`; returns its manifest."""
    import keras
    import tensorflow as tf

    import tfaudio
    from tfaudio.audio.geometry import audio_geometry
    from tfaudio.experiment import restore_for_inference

    model, task = restore_for_inference(run_dir, checkpoint, use_ema)
    endpoints = task.export_endpoints(model)
    os.makedirs(output, exist_ok=True)
    saved = os.path.join(output, "saved_model")
    archive = keras.export.ExportArchive()
    archive.track(model)
    if task.state is not None:
        archive.track(task.state)
    signatures = {}
    for name, (fn, input_signature) in endpoints.items():
        traced = tf.function(fn, autograph=False)
        archive.add_endpoint(name, traced, input_signature=input_signature)
        outputs = traced.get_concrete_function(*input_signature).structured_outputs
        signatures[name] = {"inputs": {s.name: _spec(s) for s in input_signature},
                            "outputs": {k: _spec(tf.TensorSpec.from_tensor(v)) for k, v in outputs.items()}}
    archive.write_out(saved, verbose=False)
    manifest = {"family": type(model).__name__, "task": type(task).__name__,
                "sample_rate": audio_geometry().sample_rate, "geometry": dataclasses.asdict(audio_geometry()),
                "signatures": signatures, "assets": task.export_assets(model, run_dir, output),
                "weights": "ema" if use_ema else "raw", "checkpoint": checkpoint or "latest",
                "tfaudio_version": tfaudio.__version__, "git_commit": _run_commit(run_dir), "tflite": {}}
    if fmt in ("tflite", "both"):
        for name in signatures:
            manifest["tflite"][name] = _to_tflite(saved, name, os.path.join(output, f"{name}.tflite"))
    if fmt == "tflite":
        import shutil

        shutil.rmtree(saved)
    with open(os.path.join(output, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return manifest


def _to_tflite(saved: str, signature: str, path: str) -> dict:
    """Converts one signature with TFLite's builtin ops, else with TensorFlow ops too (which
    need the Flex delegate at run time); {"file", "bytes", "tensorflow_ops"} or {"error"}."""
    import tensorflow as tf

    builtins = [tf.lite.OpsSet.TFLITE_BUILTINS]
    for ops in (builtins, builtins + [tf.lite.OpsSet.SELECT_TF_OPS]):
        converter = tf.lite.TFLiteConverter.from_saved_model(saved, signature_keys=[signature])
        converter.target_spec.supported_ops = ops
        try:
            flat = converter.convert()
            break
        except Exception as exc:  # the converter raises many types; its first line says why
            error = str(exc).strip().splitlines()[0][:300]
    else:
        return {"error": error}
    with open(path, "wb") as f:
        f.write(flat)
    return {"file": os.path.basename(path), "bytes": len(flat), "tensorflow_ops": len(ops) > 1}


def _run_commit(run_dir: str) -> str | None:
    try:
        with open(os.path.join(run_dir, "versions.json")) as f:
            return json.load(f).get("git_commit")
    except (OSError, ValueError):
        return None
