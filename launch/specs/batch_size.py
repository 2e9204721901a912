"""The batch-size study as a spec: accumulation (k micro-batches, BatchNorm sees one) or a
true k-times larger batch, matched by examples seen, on the waveform U-Net:

    python -m launch.run launch/specs/batch_size.py
"""

from launch.spec import Stage, Study

STUDY = Study(
    name="batch_size",
    question="Does a larger batch, accumulated or true, reach the same SI-SDR for the same examples?",
    gin_files=["gin/audio_unet.gin"],
    metric="val/si_sdr_i", mode="max",
    stages=[Stage("batch", {
        "baseline": [],
        **{f"accumulate{k}x": [f"BatchPlan.multiplier = {k}"] for k in (2, 4)},
        **{f"true{k}x": [f"BatchPlan.multiplier = {k}", "BatchPlan.mode = 'true'"] for k in (2, 4)}})])
