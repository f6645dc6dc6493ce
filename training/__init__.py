"""From recordings to a served model, in rooms named by their stage (README, "The library"):

    data/        clips in: Speech Commands folders and splits, the downloader, augmentation, generated speech
    fitting/     a model out: the config, the Lightning module and data module, checkpoints, calibration, ensembles
    evaluation/  how good it is: accuracy per sampling rate with 95% intervals, per-class reports, plots
    serving/     the face the demo and the notebook use: the model file, loading, inference with Δ rescaled, audio
    common/      what every room shares: audio I/O, one-line command errors, progress lines, atomic file writes

A room imports only the rooms its docstring names (tests/test_layout.py checks every import):

    common      nothing of the project
    data        common
    serving     common, s4
    evaluation  common, data, serving, s4
    fitting     common, data, serving, evaluation, s4

The modules directly in this folder only give the commands their names (`python -m training.train`, `.evaluate`,
`.calibrate`, `.join`, `.synth`; `python -m training.data` is `data/__main__.py`): each calls its room's `main`.
"""
