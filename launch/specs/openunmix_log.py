"""The Open-Unmix log's studies (../shared/seeds/002*) on `mixtures` at 8 kHz, 10 minutes a
run, each stage carrying the earlier winners: hidden size x LSTM direction, then samples
per track, then the (true) batch size with the learning rate scaled by its square root
(12 runs, two hours):

    python -m launch.run launch/specs/openunmix_log.py [--parallel 2]
"""

from launch.spec import Stage, Study, grid


def batch_sizes(opt):
    return {f"batch{b}": [f"batch_size = {b}", f"learning_rate = {opt.learning_rate * (b / opt.batch_size) ** 0.5:.3g}"]
            for b in (8, 16, 32)}


STUDY = Study(
    name="openunmix_log",
    question="How do hidden size, LSTM direction, samples per track and batch size trade separation quality "
             "for time?",
    gin_files=["gin/openunmix_8khz.gin"],
    bindings=["Trainer.max_minutes = 10"],
    metric="val_ema/si_sdr_i", mode="max", at="best",
    stages=[
        Stage("hidden_direction", grid(
            hidden={f"hidden{h}": [f"OpenUnmix.hidden_size = {h}"] for h in (128, 256, 512)},
            direction={"bi": ["OpenUnmix.unidirectional = False"], "uni": ["OpenUnmix.unidirectional = True"]})),
        Stage("samples_per_track", {f"spt{n}": [f"SeparationData.samples_per_track = {n}"] for n in (1, 4, 16)}),
        Stage("batch", batch_sizes),
    ])
