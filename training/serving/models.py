"""The model kinds a config or an exported model may name, and how to build one from its kwargs."""

from __future__ import annotations

import inspect

from torch import nn

from s4 import S4Classifier, S4Options
from training.serving.cnn import M5

MODELS: dict[str, type[nn.Module]] = {"s4": S4Classifier, "cnn": M5}


def model_options(kind: str) -> list[str]:
    """Keyword options of model `kind` with n_classes: `S4Options`' fields for S4, the CNN's constructor's."""
    if kind == "s4":
        return ["n_classes", *S4Options.names()]
    return list(inspect.signature(MODELS[kind]).parameters)


def build_model(kind: str, **kwargs) -> nn.Module:
    """`kind` ("s4" | "cnn") and its constructor kwargs → the module; unknown kinds or options are ValueErrors."""
    if kind not in MODELS:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(MODELS)}")
    unknown = sorted(set(kwargs) - set(model_options(kind)))
    if unknown:
        raise ValueError(f"unknown option(s) for model {kind!r}: {', '.join(unknown)}")
    return MODELS[kind](**kwargs)
