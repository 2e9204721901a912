"""Trains the toy model in its own process (preemption and distribution tests):
python tests/toy_train.py MODEL_DIR TRAIN_STEPS [GIN_BINDING ...]
with the strategy from $STRATEGY (default "default") and $CPU_REPLICAS logical CPUs."""

import os
import sys

import numpy as np

from tfaudio import compose, config
from tfaudio.training.strategy import make_strategy, worker_dir

import toy  # beside this script, so on sys.path when it runs as `python tests/toy_train.py`

if __name__ == "__main__":
    model_dir, steps, params = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
    toy.register()
    config.parse([], ["build.model = @ToyModel()", "build.task = @ToyTask()", "Trainer.data = @ToyData()",
                      "BatchPlan.batch_size = 8", "Trainer.steps_per_loop = 1", "Trainer.eval_every = 1000000",
                      f"BatchPlan.train_steps = {steps}"] + params, finalize=False)
    strategy = make_strategy(os.environ.get("STRATEGY", "default"), int(os.environ.get("CPU_REPLICAS", "0")))
    trainer, _ = compose.train(model_dir, strategy, tracker="none")
    np.save(os.path.join(worker_dir(model_dir, strategy), "weights.npy"),
            np.concatenate([w.ravel() for w in trainer.model.get_weights()]))
