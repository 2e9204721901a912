"""What the commands share: the flags of those that restore a run, and the checks that
end a command with one line before any model loads."""

from __future__ import annotations

import os
import sys

from absl import flags

FLAGS = flags.FLAGS


def define_restore_flags(trained: str, ema_help: str = "Use the EMA weights when the run kept them."):
    """--model_dir (a run of a trained `trained`), --checkpoint, --ema."""
    flags.DEFINE_string("model_dir", None, f"Run directory of a trained {trained}.", required=True)
    flags.DEFINE_string("checkpoint", None, "A checkpoint path (default: the run's latest).")
    flags.DEFINE_bool("ema", True, ema_help)


def define_audio_input_flags(input_help: str = "Audio file, folder or manifest; repeat --input or list several "
                                                "after it (as a shell expands *.wav)."):
    """--input (repeatable) and --resample."""
    flags.DEFINE_multi_string("input", [], input_help)
    flags.DEFINE_bool("resample", False, "Resample inputs at another sample rate instead of rejecting them.")


def fail(message: str, code: int = 2):
    """Ends the command with one line on stderr (gin appends call sites: dropped)."""
    print(str(message).strip().splitlines()[0], file=sys.stderr)
    sys.exit(code)


def unwritable_parent(path: str) -> str | None:
    """The nearest existing path at or above `path` when it is not a writable folder."""
    folder = os.path.abspath(path)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    return None if os.path.isdir(folder) and os.access(folder, os.W_OK) else folder


def output_folder(flag: str, folder: str):
    """Creates `folder` (the one `flag` writes into) or ends the command with one line."""
    try:
        os.makedirs(folder or ".", exist_ok=True)
    except OSError as exc:
        fail(f"error: {flag}: cannot create {folder} ({exc.strerror}); choose another")
    if not os.access(folder or ".", os.W_OK):
        fail(f"error: {flag}: {folder} is not writable; choose another")


def need(ok: bool, message: str):
    """Ends the command with `message` (one line, exit 2) unless `ok`."""
    if not ok:
        fail(f"error: {message}")


def audio_inputs(argv):
    """The InferenceInputs of --input and of the arguments after it (`--input *.wav`, as a
    shell expands it, names several); one line and exit 2 when none is readable audio."""
    from tfaudio.audio.io import InferenceInputs
    from tfaudio.data.readers import expand_inputs
    from tfaudio.errors import ConfigError

    items = list(FLAGS.input) + list(argv[1:])
    need(bool(items), "give at least one --input (a file, a folder or a manifest)")
    try:
        paths = expand_inputs(items)
    except ConfigError as exc:
        fail(f"error: {exc}")
    need(bool(paths), f"--input {' '.join(items)} names no audio file")
    inputs = InferenceInputs(paths, FLAGS.resample)
    need(bool(inputs.readable), f"none of the {len(paths)} inputs is readable audio")
    return inputs
