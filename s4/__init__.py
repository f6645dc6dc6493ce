"""s4: Structured State Space sequence models (S4 and S4D) for raw-waveform classification."""

from s4.cauchy import cauchy
from s4.layer import S4
from s4.model import S4Classifier, param_groups

__all__ = ["S4", "S4Classifier", "cauchy", "param_groups"]
