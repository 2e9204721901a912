"""The dilated-CTC hyperparameter search of the log (../shared/seeds/003*), stage by stage,
each stage carrying the earlier winners forward (<OPT>), sized for one 2-core CPU:
every run trains on the same number of examples (EXAMPLES; the batch stage sets its
steps from it), so variants compare at equal data whatever else shares the machine, and
the local and Ray backends reach the same numbers. 25 variants, 21 trained (the
stages' <OPT> variants reuse earlier runs): about 20 minutes with --parallel 2:

    python -m launch.run launch/specs/ctc_sequential.py [--parallel 2] [--backend ray]

padding off/on -> BatchNorm off/on -> optimizer x learning rate (Adam, Adamax, Adagrad,
each from its default down) -> batch size with the learning rate scaled by the square
root of the batch ratio, and 0.5x / 2x of that (the trainer's LearningRate.scaling_rule,
referenced to the winning batch) -> maximum dilation -> number of stacks.
The log compared validation loss; here the winner is the lowest validation CER.
"""

from launch.spec import Stage, Study, grid

EXAMPLES = 3200  # training examples per run
EVALUATIONS = 4  # per run, evenly spaced


def budget(batch: int) -> list[str]:
    """The bindings that train `batch`-example steps on EXAMPLES examples."""
    steps = EXAMPLES // batch
    return [f"train_steps = {steps}", f"eval_every = {steps // EVALUATIONS}"]


def batch_sizes(opt):
    """Batch 4, 8, 16 at the winning learning rate, which the trainer's square-root rule
    (gin/ctc/base.gin) scales from the winning batch, and at 0.5x and 2x of it."""
    return {f"batch{batch}-lr{factor:g}x": [f"batch_size = {batch}",
                                            f"LearningRate.reference_batch_size = {opt.batch_size}",
                                            f"learning_rate = {opt.learning_rate * factor:.3g}"] + budget(batch)
            for batch in (4, 8, 16) for factor in (0.5, 1, 2)}


STUDY = Study(
    name="ctc_sequential",
    question="Which padding, BatchNorm, optimizer and learning rate, batch size, maximum dilation and number of "
             "stacks train the dilated CTC recogniser to the lowest validation CER after "
             f"{EXAMPLES:,} training examples?",
    gin_files=["gin/ctc_dilated_small.gin"],
    bindings=budget(8) + ["batch_size = 8", "learning_rate = 5e-4",
                          "optimizer = 'adamax'", "max_dilation = 16", "num_stacks = 2"],
    metric="val/cer", mode="min", at="final",
    stages=[
        Stage("padding", {"padding-off": ["padding = False"], "padding-on": ["padding = True"]}),
        Stage("bn", {"bn-off": ["batch_norm = False"], "bn-on": ["batch_norm = True"]}),
        Stage("optimizer", grid(opt={"adam": ["optimizer = 'adam'"], "adamax": ["optimizer = 'adamax'"],
                                     "adagrad": ["optimizer = 'adagrad'"]},
                                lr={"2e-3": ["learning_rate = 2e-3"], "5e-4": ["learning_rate = 5e-4"]})),
        Stage("batch", batch_sizes),
        Stage("dilation", {f"maxdil{d}": [f"max_dilation = {d}"] for d in (8, 16, 32)}),
        Stage("stacks", {f"stacks{n}": [f"num_stacks = {n}"] for n in (1, 2, 3)}),
    ])
