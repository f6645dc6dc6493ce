"""A model out: everything `python -m training.train` wires together, and what refines an exported model.

    config             the YAML config: defaults, checks, dotted overrides
    datamodule         the Lightning data module: a split per folder, augmentation, a balanced sampler
    balance            drawing every class equally often, or weighing the loss by class
    lightning_module   `SpeechClassifier`: the model, its loss, optimiser and schedule, the validation figure
    checkpoint_io      checkpoints written atomically, so a killed run resumes
    progress_callback  training progress as plain log lines
    train              the command: a run folder with checkpoints, logs, curves, and the exported, tested model
    calibrate          the rejection offset of a keyword spotter, chosen on the validation speakers
    join               exported runs of one recipe → one ensemble export

Imports: `training.common`, `training.data`, `training.serving`, `training.evaluation` and `s4`.
"""
