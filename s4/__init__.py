"""s4: Structured State Space sequence models (S4 and S4D) for raw-waveform classification."""

from s4.cauchy import cauchy
from s4.layer import S4
from s4.model import S4Classifier, param_groups
from s4.options import S4Options

__all__ = ["S4", "S4Classifier", "S4Options", "cauchy", "param_groups"]
