"""The flags every command that restores a run shares."""

from __future__ import annotations

from absl import flags


def define_restore_flags(trained: str, ema_help: str = "Use the EMA weights when the run kept them."):
    """--model_dir (a run of a trained `trained`), --checkpoint, --ema."""
    flags.DEFINE_string("model_dir", None, f"Run directory of a trained {trained}.", required=True)
    flags.DEFINE_string("checkpoint", None, "A checkpoint path (default: the run's latest).")
    flags.DEFINE_bool("ema", True, ema_help)


def define_audio_input_flags(input_help: str = "Audio file, folder or manifest (repeatable)."):
    """--input (repeatable) and --resample."""
    flags.DEFINE_multi_string("input", [], input_help)
    flags.DEFINE_bool("resample", False, "Resample inputs at another sample rate instead of rejecting them.")
