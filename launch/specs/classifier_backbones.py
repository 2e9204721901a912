"""The classifier log's backbone comparison (../shared/seeds/004*) on spoken-language
identification, 10 minutes a backbone, then the feature variant on the winner:

    python -m launch.run launch/specs/classifier_backbones.py
"""

from launch.spec import Stage, Study

STUDY = Study(
    name="classifier_backbones",
    question="Which feature extractor, and which features, identify the language best on the CPU budget?",
    gin_files=["gin/classifier_langid.gin"],
    bindings=["Trainer.max_minutes = 10"],
    metric="val/accuracy", mode="max", at="best",
    stages=[
        Stage("backbone", {b: [f"backbone = '{b}'"] for b in ("cnn", "rnn", "resnet18", "regnety800mf")}),
        Stage("features", {f: [f"features = '{f}'"] for f in ("log_mel", "mfcc", "both")}),
    ])
