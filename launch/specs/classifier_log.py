"""The classifier log's other studies (../shared/seeds/004*) on spoken-language
identification with the small CNN, each stage carrying the earlier winners: crop
length, pad method, features and their normalisation, dropout, weight decay, then the
batch size x learning rate grid. 5 minutes a run, 29 runs:

    python -m launch.run launch/specs/classifier_log.py [--parallel 2]
"""

from launch.spec import Stage, Study, grid

STUDY = Study(
    name="classifier_log",
    question="Which crop length, padding, features, regularisation and batch size / learning rate classify "
             "the language best?",
    gin_files=["gin/classifier_langid.gin"],
    bindings=["Trainer.max_minutes = 5"],
    metric="val/accuracy", mode="max", at="best",
    stages=[
        Stage("crop", {f"crop{s}s": [f"crop_seconds = {s}"] for s in (2.0, 4.0, 8.0)}),
        Stage("pad", {p: [f"pad_method = '{p}'"] for p in ("zeros", "wrap", "edge", "reflect", "mirror")}),
        Stage("features", grid(features={f: [f"features = '{f}'"] for f in ("log_mel", "mfcc", "both")},
                               norm={"separate": ["Classifier.normalization = 'separate'"],
                                     "perclip": ["Classifier.normalization = 'per_clip'"]})),
        Stage("dropout", {f"dropout{d}": [f"dropout = {d}"] for d in (0.1, 0.3, 0.5)}),
        Stage("decay", {f"wd{w:g}": [f"weight_decay = {w}"] for w in (1e-5, 1e-4, 1e-3)}),
        Stage("batch_lr", grid(batch={f"b{b}": [f"batch_size = {b}"] for b in (16, 32, 64)},
                               lr={f"lr{lr:g}": [f"learning_rate = {lr}"] for lr in (1e-3, 2e-3, 4e-3)})),
    ])
