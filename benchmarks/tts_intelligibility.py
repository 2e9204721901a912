"""Does the trained Tacotron speak? Listens to held-out prompts synthesised from a restored
checkpoint with a recogniser that tfaudio does not train.

    python benchmarks/tts_intelligibility.py --model_dir=runs/demo_tacotron_8khz [--prompts 20]

For each of the first `--prompts` validation prompts of the run's own data split
(never trained on), it writes three WAVs to <model_dir>/listening/ (and there
summary.json, which `python -m tfaudio.report` shows in the run's row): the real
recording, the ground-truth-mel resynthesis through the run's own vocoder path
(the ceiling) and free-running synthesis from the checkpoint. pocketsphinx's
bundled US English model (`pip install -e '.[bench]'`) then picks, in closed-set mode,
which corpus prompt it heard: a JSGF grammar whose alternatives are every corpus
transcript whose words its dictionary knows. A prompt counts when the pick is its
own text. MCD (dB, after DTW) compares each WAV's log mel with the recording's. A
synthesis with NaN or infinite samples (a diverged model) counts as not understood,
without MCD or WAV, and is counted as not finite.
With --each_checkpoint it then listens to the synthesis of every other checkpoint the
run kept, oldest first, and writes listening/by_step.json: when speech emerged, the first
step whose synthesis was understood at least 0.7x as often as the recordings (the
report's "speaks at step"). A run keeps CheckpointConfig.keep checkpoints (3), one per
evaluation: train with e.g. --gin_param='CheckpointConfig.keep = 100' to keep them all.
The last line is JSON for scripts (make demo prints it).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import soxr  # noqa: E402

LISTENER_RATE = 16000


def words(text: str) -> list[str]:
    """The spoken words of a transcript, as the recogniser's dictionary spells them."""
    from tfaudio.data.text import normalize

    return re.findall(r"[a-z']+", normalize(text).replace("-", " "))


class ClosedSetListener:
    """pocketsphinx restricted to a set of sentences: recognise() returns the one it heard."""

    def __init__(self, sentences: list[str]):
        from pocketsphinx import get_model_path

        model = get_model_path()
        dictionary = os.path.join(model, "en-us", "cmudict-en-us.dict")
        with open(dictionary, encoding="utf-8") as f:
            known = {line.split()[0].split("(")[0] for line in f if line.strip()}
        self.sentences = sorted({" ".join(w) for w in map(words, sentences) if w and set(w) <= known})
        rules = " | ".join(f"( {s} )" for s in self.sentences)
        self.grammar = f"#JSGF V1.0;\ngrammar prompts;\npublic <prompt> = {rules} ;\n"
        self.settings = dict(hmm=os.path.join(model, "en-us", "en-us"), dict=dictionary, lm=None,
                             samprate=LISTENER_RATE, loglevel="FATAL", cmn="batch")

    def _decoder(self):
        """A fresh decoder: pocketsphinx carries estimates (cepstral mean, noise) from one
        utterance to the next, so a shared one judged a recording by what came before it."""
        from pocketsphinx import Decoder

        decoder = Decoder(**self.settings)
        decoder.add_jsgf_string("prompts", self.grammar)
        decoder.activate_search("prompts")
        return decoder

    def knows(self, text: str) -> bool:
        return " ".join(words(text)) in self.sentences

    def recognise(self, wave: np.ndarray, rate: int) -> str:
        audio = soxr.resample(wave.astype(np.float32), rate, LISTENER_RATE)
        pcm = (np.clip(audio, -1, 1) * 32767).astype(np.int16).tobytes()
        decoder = self._decoder()
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        return hyp.hypstr if hyp is not None else ""


def log_mel(task, wave: np.ndarray) -> np.ndarray:
    return task.spectra.log_spectra(wave[None, :].astype(np.float32))[0][0].numpy()


NOT_FINITE = "(not finite)"


def judge(listener, task, audio: np.ndarray, real: np.ndarray, rate: int) -> tuple[str, float | None]:
    """What the listener heard in `audio` and its MCD (dB) against the recording `real`;
    (NOT_FINITE, None) for NaN or infinite samples (a diverged model's)."""
    if not np.all(np.isfinite(audio)):
        return NOT_FINITE, None
    from tfaudio.audio.distortion import mel_cepstral_distortion

    return listener.recognise(audio, rate), mel_cepstral_distortion(log_mel(task, audio), log_mel(task, real))


SPEAKS = 0.7  # understood at least this share of what the recordings were


def score(listener, task, waves: list, reals: list, truths: list[str], rate: int) -> dict:
    """Counts of one kind of audio over the prompts: understood ("exact"), "of", "nonfinite",
    mean "mcd_db"; and "heard", what the listener picked for each."""
    heard, mcds = [], []
    for audio, real in zip(waves, reals):
        picked, mcd = judge(listener, task, audio, real, rate)
        heard.append(picked)
        if mcd is not None:
            mcds.append(mcd)
    return {"exact": sum(h == t for h, t in zip(heard, truths)), "of": len(truths),
            "nonfinite": heard.count(NOT_FINITE), "mcd_db": float(np.mean(mcds)) if mcds else None, "heard": heard}


def emergence(model, task, listener, texts: list[str], reals: list, truths: list[str], rate: int,
              checkpoints: list[str]) -> list[dict]:
    """The synthesis from each of `checkpoints` judged as `score` does, with its "step"."""
    from tfaudio.experiment import load_checkpoint

    rows = []
    for path in checkpoints:
        load_checkpoint(model, task, path)
        waves = [wave for wave, _, _ in task.synthesize(model, texts)]
        row = {"step": int(path.rsplit("-", 1)[1]), **score(listener, task, waves, reals, truths, rate)}
        del row["heard"]
        print(f"step {row['step']:>7}: synthesis recognised {row['exact']}/{row['of']}", flush=True)
        rows.append(row)
    return rows


def speaks_at(rows: list[dict], real_exact: int) -> int | None:
    """The first step whose synthesis was understood SPEAKS times as often as the recordings."""
    return next((r["step"] for r in sorted(rows, key=lambda r: r["step"])
                 if real_exact and r["exact"] >= SPEAKS * real_exact), None)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--each_checkpoint", action="store_true",
                        help="also listen to every other checkpoint the run kept: when speech emerged")
    parser.add_argument("--smoke", action="store_true", help="two prompts (for CI)")
    parser.add_argument("--gin_param", action="append", default=[],
                        help="override an inference setting, e.g. 'TacotronTask.griffin_lim_power = 1.0'")
    args = parser.parse_args()
    if args.smoke:
        args.prompts = 2
    try:
        import pocketsphinx  # noqa: F401
    except ImportError:
        sys.exit("error: the listener needs pocketsphinx: pip install -e '.[bench]'")
    import tensorflow as tf

    from tfaudio.audio.io import read_audio, write_wav
    from tfaudio.data.audio_data import AudioData
    from tfaudio.experiment import restore_for_inference
    from tfaudio.run_dir import CHECKPOINTS, latest_checkpoint

    model, task = restore_for_inference(args.model_dir, args.checkpoint, require="synthesize",
                                        gin_params=args.gin_param)
    data = AudioData()
    corpus = [e for e in data.train_corpus.examples + data.val_corpus.examples if e.get("text")]
    listener = ClosedSetListener([e["text"] for e in corpus])
    held_out = [e for e in sorted(data.val_corpus.examples, key=lambda e: e["id"]) if listener.knows(e["text"])]
    held_out = held_out[:args.prompts]
    rate = task.geometry.sample_rate
    out_dir = os.path.join(args.model_dir, "listening")
    os.makedirs(out_dir, exist_ok=True)
    texts = [e["text"] for e in held_out]
    truths = [" ".join(words(t)) for t in texts]
    synthesized = task.synthesize(model, texts)
    print(f"{len(held_out)} held-out prompts; closed set of {len(listener.sentences)} corpus sentences")
    waves = {"real": [], "resynthesis": [], "synthesis": [wave for wave, _, _ in synthesized]}
    for example in held_out:
        real = read_audio(example["path"], rate)[:, 0]
        mel, _, frames, _ = task.spectra.targets({"audio": real[None], "length": np.array([len(real)])}, 1)
        waves["real"].append(real)
        waves["resynthesis"].append(task.to_audio({"mel_post": mel}, 0, int(frames[0])))
    summary = {kind: score(listener, task, audio, waves["real"], truths, rate) for kind, audio in waves.items()}
    for k, (example, (_, _, ended_by)) in enumerate(zip(held_out, synthesized)):
        for kind, audio in waves.items():
            if np.all(np.isfinite(audio[k])):  # a diverged model's NaN audio is not written
                write_wav(os.path.join(out_dir, f"{example['id']}_{kind}.wav"), audio[k], rate)
        marks = " ".join(f"{kind}={'ok' if summary[kind]['heard'][k] == truths[k] else 'no'}" for kind in waves)
        print(f"{example['id']:<28} {marks} synthesis heard as {summary['synthesis']['heard'][k]!r}"
              f" (ended by the {ended_by})")
    for kind, s in summary.items():
        del s["heard"]
        s["rate"] = s["exact"] / max(s["of"], 1)
        mcd = "n/a" if s["mcd_db"] is None else f"{s['mcd_db']:.2f} dB"
        print(f"{kind:<12} recognised {s['exact']:>2}/{s['of']}  MCD {mcd}"
              + (f"  ({s['nonfinite']} not finite)" if s["nonfinite"] else ""))
    real_rate, resyn_rate = summary["real"]["rate"], summary["resynthesis"]["rate"]
    syn = summary["synthesis"]["rate"]
    print(f"synthesis / real = {syn / real_rate if real_rate else float('nan'):.2f} (target >= {SPEAKS}), "
          f"synthesis / resynthesis = {syn / resyn_rate if resyn_rate else float('nan'):.2f} (target >= 0.8); "
          f"WAVs in {out_dir}")
    if args.each_checkpoint:
        judged = args.checkpoint or latest_checkpoint(args.model_dir)
        kept = tf.train.get_checkpoint_state(os.path.join(args.model_dir, CHECKPOINTS)).all_model_checkpoint_paths
        rows = emergence(model, task, listener, texts, waves["real"], truths, rate,
                         [p for p in kept if os.path.basename(p) != os.path.basename(judged)])
        rows.append({"step": int(judged.rsplit("-", 1)[1]), **{k: v for k, v in summary["synthesis"].items()
                                                                if k != "rate"}})
        rows.sort(key=lambda r: r["step"])
        first = speaks_at(rows, summary["real"]["exact"])
        with open(os.path.join(out_dir, "by_step.json"), "w") as f:
            json.dump({"real": summary["real"], "speaks_at": first, "steps": rows}, f)
        print(f"speaks (synthesis >= {SPEAKS}x the recordings' {summary['real']['exact']}) at step "
              f"{first if first is not None else 'none yet'}; listening/by_step.json")
    with open(os.path.join(out_dir, "summary.json"), "w") as f:
        json.dump(summary, f)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
