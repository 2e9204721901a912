"""Does the attention Tacotron's decoder read the text, and does it still when it runs on
its own frames? For the first `--prompts` held-out prompts of a restored run (the
validation split, as tts_intelligibility.py takes them), the mean absolute error of the
normalised log mel (the loss's units) against the recording:

- teacher-forced with the prompt's own text, and with the next prompt's text: when the
  two are close, the decoder predicts from the previous frames and ignores the text;
- free-running over its first `--head` frames and over the rest (up to the shorter of it
  and the recording): a head near the teacher-forced error and a rest far from it is a
  decoder that loses the text as its own frames feed back (exposure bias).

    python benchmarks/tts_exposure.py --model_dir=RUN [--prompts 20] [--head 20] [--smoke]

It writes listening/<id>_exposure.png per prompt: the recording's mel, the teacher-forced
and the free-running one. The last line is JSON for scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402


def plot(path: str, title: str, panels: dict) -> None:
    """One row of mel spectrograms [T, C], each under its name."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 2.6))
    for ax, (name, mel) in zip(axes, panels.items()):
        ax.imshow(mel.T, origin="lower", aspect="auto", vmin=-3, vmax=3)
        ax.set_title(f"{title}: {name}")
        ax.set_xlabel("frame")
    fig.tight_layout()
    fig.savefig(path, dpi=60)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model_dir", required=True)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--prompts", type=int, default=20)
    parser.add_argument("--head", type=int, default=20, help="free-running frames counted as the head")
    parser.add_argument("--smoke", action="store_true", help="two prompts, a head of 5 frames (for CI)")
    args = parser.parse_args()
    if args.smoke:
        args.prompts, args.head = 2, 5
    import tensorflow as tf

    from tfaudio.audio.io import read_audio
    from tfaudio.data.audio_data import AudioData
    from tfaudio.experiment import restore_for_inference

    model, task = restore_for_inference(args.model_dir, args.checkpoint, require="synthesize")
    if not model.autoregressive:
        sys.exit(f"error: {args.model_dir} trains {type(model).__name__}, which is not autoregressive: "
                 "train an attention Tacotron (gin/tacotron_8khz_attention.gin)")
    held_out = sorted((e for e in AudioData().val_corpus.examples if e.get("text")), key=lambda e: e["id"])
    held_out = held_out[:args.prompts]
    if len(held_out) < 2:
        sys.exit(f"error: {args.model_dir}: its validation split has {len(held_out)} prompt with text; "
                 "the other-text comparison needs two")
    rate, out_dir = task.geometry.sample_rate, os.path.join(args.model_dir, "listening")
    os.makedirs(out_dir, exist_ok=True)

    def teacher_forced(real, ids):
        batch = {"audio": tf.constant(real[None]), "length": tf.constant([len(real)]),
                 "text_ids": tf.constant([ids], tf.int32), "text_length": tf.constant([len(ids)], tf.int32)}
        inputs, mel, _, frames, _ = task.teacher_forced_inputs(batch, model)
        n = int(frames[0])
        return mel[0, :n].numpy(), model(inputs, training=False)["mel_post"][0, :n].numpy()

    encoded = [task.vocabulary.encode(e["text"]) for e in held_out]  # phonemes: one espeak-ng call each
    errors = {"teacher-forced": [], "other text": [], "free head": [], "free rest": []}
    for k, (example, ids) in enumerate(zip(held_out, encoded)):
        real = read_audio(example["path"], rate)[:, 0]
        target, forced = teacher_forced(real, ids)
        _, other = teacher_forced(real, encoded[(k + 1) % len(held_out)])
        out = task.infer(model, tf.constant([ids], tf.int32), tf.constant([len(ids)], tf.int32),
                         task.max_decoder_steps)
        free = out["mel_post"][0, :int(out["steps"][0]) * model.reduction].numpy()
        shared = min(len(free), len(target))
        head = min(args.head, shared)
        row = {"teacher-forced": np.abs(forced - target).mean(), "other text": np.abs(other - target).mean(),
               "free head": np.abs(free[:head] - target[:head]).mean(),
               "free rest": np.abs(free[head:shared] - target[head:shared]).mean() if shared > head else np.nan}
        for key, value in row.items():
            errors[key].append(float(value))
        print(f"{example['id']:<28} " + "  ".join(f"{key} {value:.3f}" for key, value in row.items()), flush=True)
        plot(os.path.join(out_dir, f"{example['id']}_exposure.png"), example["id"],
             {"recording": target, "teacher-forced": forced, "free-running": free})
    # None where no prompt had the frames (a free-running output no longer than the head)
    summary = {key: float(np.mean(kept)) if (kept := [v for v in values if not np.isnan(v)]) else None
               for key, values in errors.items()}
    print(f"mel L1 over {len(held_out)} held-out prompts: "
          + ", ".join(f"{k} {'n/a' if v is None else f'{v:.3f}'}" for k, v in summary.items()) + f"; PNGs in {out_dir}")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
