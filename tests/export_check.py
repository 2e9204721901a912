"""Runs exports in a process that never imports tfaudio and compares their outputs with
what tfaudio's own inference produced:
python tests/export_check.py JOBS.json REPORT.json
JOBS lists {"name", "export_dir", "cases", "tflite"}; each CASES .npz holds, per
signature S, "S/in/<input>" and "S/out/<output>" arrays (strings as bytes);
"stream_step/in/audio" is a whole signal, streamed hop by hop. SavedModel outputs must
match to 1e-4, TFLite ones to 1e-3 (absolute, relative to each output's peak). REPORT
gets {name: [one line per mismatch]}."""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def cases(npz):
    by_signature = {}
    for key in npz.files:
        signature, kind, name = key.split("/")
        by_signature.setdefault(signature, {"in": {}, "out": {}})[kind][name] = npz[key]
    return by_signature


def run_saved_model(export_dir, signature, inputs):
    loaded = tf.saved_model.load(os.path.join(export_dir, "saved_model"))
    out = getattr(loaded, signature)(*[tf.constant(v) for v in inputs.values()])
    return {k: v.numpy() for k, v in out.items()}


def run_stream(export_dir, inputs, manifest):
    """Feeds "audio" (the reflect-padded signal) hop by hop through stream_step from
    stream_state(); returns the output without its delay and the padded head."""
    loaded = tf.saved_model.load(os.path.join(export_dir, "saved_model"))
    state = dict(loaded.stream_state())
    names = list(manifest["signatures"]["stream_step"]["inputs"])[1:]  # the state, in argument order
    geometry = manifest["geometry"]
    audio, hop = inputs["audio"], geometry["hop_length"]
    pieces = []
    for start in range(0, len(audio) - hop + 1, hop):
        out = loaded.stream_step(tf.constant(audio[start:start + hop]), *[state[k] for k in names])
        pieces.append(out["audio"].numpy())
        state = {k: out[k] for k in names}
    skip = geometry["n_fft"] - hop + geometry["n_fft"] // 2
    return {"audio": np.concatenate(pieces)[skip:]}


def run_tflite(export_dir, signature, inputs):
    interpreter = tf.lite.Interpreter(model_path=os.path.join(export_dir, f"{signature}.tflite"))
    runner = interpreter.get_signature_runner(signature)
    return runner(**inputs)


def mismatches(export_dir: str, cases_path: str, tflite: bool) -> list[str]:
    """One line per output of the export at export_dir that differs from its case."""
    with open(os.path.join(export_dir, "manifest.json")) as f:
        manifest = json.load(f)
    errors = []
    for signature, case in cases(np.load(cases_path)).items():
        if tflite and "file" not in manifest["tflite"].get(signature, {}):
            errors.append(f"{signature}: no TFLite file ({manifest['tflite'].get(signature)})")
            continue
        if signature == "stream_step":
            out = run_stream(export_dir, case["in"], manifest)
        else:
            out = (run_tflite if tflite else run_saved_model)(export_dir, signature, case["in"])
        tolerance = 1e-3 if tflite else 1e-4
        for name, expected in case["out"].items():
            got = np.asarray(out[name])
            if expected.dtype.kind in "SUO":
                if got.astype(str).tolist() != expected.astype(str).tolist():
                    errors.append(f"{signature}/{name}: {got.astype(str).tolist()} != {expected.astype(str).tolist()}")
            elif got.shape != expected.shape:
                errors.append(f"{signature}/{name}: shape {got.shape} != {expected.shape}")
            else:
                worst = float(np.max(np.abs(got - expected))) / max(1.0, float(np.max(np.abs(expected))))
                if worst > tolerance:
                    errors.append(f"{signature}/{name}: off by {worst:.2e} (tolerance {tolerance})")
    return errors


def main():
    jobs_path, report_path = sys.argv[1], sys.argv[2]
    with open(jobs_path) as f:
        jobs = json.load(f)
    report = {job["name"]: mismatches(job["export_dir"], job["cases"], job["tflite"]) for job in jobs}
    assert not any(m == "tfaudio" or m.startswith("tfaudio.") for m in sys.modules), "tfaudio was imported"
    with open(report_path, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
