"""Seed 001's study as a spec: Tacotron at 8 kHz trained at batch 32 with Adam (the seed's
baseline), then at 128 and 256 with Adam under Goyal et al.'s linear learning-rate scaling
and warmup, and with LAMB (You et al.) under square-root scaling and warmup; 256 also as
accumulated micro-batches, for a device without the memory; and the seed's unguarded log
compression at the 256 LAMB setting, with and without the divergence guard. Every run gets
the same wall-clock budget (`Trainer.max_minutes`), and the report plots each against
examples seen and wall clock, so it answers both "per example" and "per minute". Judged
by free-running speech: the mel cepstral distortion of the free-running mels (val/free_mcd).
A second stage, at the winner's batch, measures tracing as the seed did: the eager step
against the traced one, and steps_per_loop 1 against 25 (the report's examples/s).

    python -m launch.run launch/specs/tacotron_large_batch.py                   # durations recipe
    python -m launch.run launch/specs/tacotron_large_batch.py --gin_file=gin/tacotron_8khz_attention.gin \\
        --out=runs/studies/tacotron_large_batch_attention                      # attention recipe

The budget is CPU-sized; on an accelerator raise it, e.g. --gin_param='Trainer.max_minutes = 240'.
The unguarded log gives -inf for a frame of exact zeros in a recording: the step skips
such an update as non-finite and counts it (skipped_updates), and the divergence guard
rolls back after DivergenceGuard.nonfinite_patience loops of skipped updates in a row;
whether the corpus holds such frames, and whether the seed's divergence comes back
without the guard, is what the two unguarded runs measure.
"""

from launch.spec import Stage, Study

BASELINE = 32  # the seed's batch; the learning rate is the recipe's, as tuned there
WARMUP = 400  # baseline steps of linear warmup for the large batches
ADAM = ["make_optimizer.name = 'adam'", "LearningRate.scaling_rule = 'linear'"]
LAMB = ["make_optimizer.name = 'lamb'", "LearningRate.scaling_rule = 'sqrt'"]
UNGUARDED_LOG = ["TacotronTask.log_compression = @LogCompression()", "LogCompression.guarded = False"]


def larger(k: int, mode: str = "true") -> list:
    """k times the baseline batch, as one true batch or k accumulated micro-batches."""
    return [f"BatchPlan.multiplier = {k}", f"BatchPlan.mode = '{mode}'", f"LearningRate.warmup_steps = {WARMUP}"]


VARIANTS = {
    f"adam{BASELINE}": ADAM,
    **{f"{name}{BASELINE * k}": larger(k) + rule for k in (4, 8) for name, rule in (("adam", ADAM), ("lamb", LAMB))},
    f"adam{BASELINE * 8}_accumulated": larger(8, "accumulate") + ADAM,
    f"lamb{BASELINE * 8}_unguarded_log": larger(8) + LAMB + UNGUARDED_LOG,
    f"lamb{BASELINE * 8}_unguarded_log_no_guard": larger(8) + LAMB + UNGUARDED_LOG + ["training_hooks.guard = False"],
}

STUDY = Study(
    name="tacotron_large_batch",
    question="Do larger batches (Adam with linear scaling, LAMB with square-root scaling) reach the same speech "
             "per example seen and per minute as batch 32, and does the guarded log keep batch 256 from diverging?",
    gin_files=["gin/tacotron_8khz.gin"],
    bindings=[f"batch_size = {BASELINE}", f"LearningRate.reference_batch_size = {BASELINE}",
              "Trainer.max_minutes = 30"],
    metric="val/free_mcd", mode="min",
    stages=[Stage("batch_and_optimizer", VARIANTS),
            # Seed 001 traced its step (1.96 -> 0.88 s a step): at the winner's batch, the eager
            # step against the traced one, and one host sync per update against one per 25.
            Stage("tracing", {"traced": [], "eager": ["StepOptions.traced = False"],
                              "steps_per_loop_1": ["Trainer.steps_per_loop = 1"],
                              "steps_per_loop_25": ["Trainer.steps_per_loop = 25"]})])
