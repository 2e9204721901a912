"""The learning-rate study as a spec: 0.1x .. 10x the experiment's learning rate under
exponential decay, the clearly losing rates stopped early (ASHA: at the 1st, 3rd and 9th
evaluation, only the best third of the runs that got there go on):

    python -m launch.run launch/specs/learning_rate.py
"""

from launch.halving import ASHA
from launch.spec import Stage, Study

STUDY = Study(
    name="learning_rate",
    question="Which learning rate, under exponential decay, separates best for the same steps?",
    gin_files=["gin/hybrid_unet.gin"],
    bindings=["LearningRate.decay = @ExponentialDecay()"],
    metric="val/si_sdr_i", mode="max", early_stopping=ASHA(reduction=3, grace=1, min_runs=3),
    stages=[Stage("lr", lambda opt: {f"{m:g}x_lr": [f"learning_rate = {opt.learning_rate * m:.3g}"]
                                     for m in (0.1, 0.33, 1, 3, 10)})])
