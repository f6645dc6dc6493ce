"""How good a model is: `python -m training.evaluate` and the figures it reports.

    evaluate  accuracy at each sampling rate (Δ rescaled, and unchanged), in noise, without the speakers a model heard
    report    per-class and balanced accuracy with 95% (Wilson) intervals, printed tables
    plots     confusion matrices, comparison bars, the rate sweep, learning curves

Imports: `training.common`, `training.data`, `training.serving` and `s4`.
"""
