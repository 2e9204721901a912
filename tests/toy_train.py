"""Trains the toy model in its own process (for preemption tests):
python tests/toy_train.py MODEL_DIR TRAIN_STEPS [GIN_BINDING ...]"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import toy  # noqa: E402
from tfaudio import config  # noqa: E402
from tfaudio.training.strategy import make_strategy  # noqa: E402
from tfaudio.training.trackers import Trackers  # noqa: E402
from tfaudio.training.trainer import Trainer  # noqa: E402

if __name__ == "__main__":
    model_dir, steps, params = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    toy.register()
    config.parse([], ["build.model = @ToyModel()", "build.task = @ToyTask()", "Trainer.data = @ToyData()",
                      "Trainer.batch_size = 8", "Trainer.steps_per_loop = 1", "Trainer.eval_every = 1000000",
                      f"Trainer.train_steps = {steps}"] + params, finalize=False)
    trackers = Trackers(model_dir, "none")
    Trainer(model_dir=model_dir, strategy=make_strategy(), trackers=trackers, seed=0).train()
    trackers.close()
