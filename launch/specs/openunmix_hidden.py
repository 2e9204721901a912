"""The Open-Unmix log's hidden-size and direction study (../shared/seeds/002*) on
`mixtures` at 8 kHz, 10 minutes a run:

    python -m launch.run launch/specs/openunmix_hidden.py
"""

from launch.spec import Stage, Study, grid

STUDY = Study(
    name="openunmix_hidden",
    question="How do hidden size and LSTM direction trade separation quality for speed?",
    gin_files=["gin/openunmix_8khz.gin"],
    bindings=["Trainer.max_minutes = 10"],
    metric="val_ema/si_sdr_i", mode="max", at="best",
    stages=[Stage("hidden_direction", grid(
        hidden={f"hidden{h}": [f"OpenUnmix.hidden_size = {h}"] for h in (128, 256, 512)},
        direction={"bi": ["OpenUnmix.unidirectional = False"], "uni": ["OpenUnmix.unidirectional = True"]}))])
