"""Training: trainer loop, optimizers, schedules, EMA, checkpoints, strategies, trackers."""
