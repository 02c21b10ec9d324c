"""What every trainable base shares: the label that is not learned and the layers LoRA adapts.

Kept apart from :mod:`deepsound.training.bases` so that each base family's module
can use them without importing the module that chooses between the families.
"""

from __future__ import annotations

from typing import Any

from deepsound.errors import ConfigError

IGNORE_INDEX = -100  # a label position the loss skips (the prompt, padding)


def linear_layers(model: Any, patterns: list[str]) -> list[str]:
    """Names of the ``nn.Linear`` modules whose full name matches one of ``patterns`` (what LoRA adapts)."""
    import re

    from torch import nn

    compiled = [re.compile(p) for p in patterns]
    names = [
        name
        for name, module in model.named_modules()
        if isinstance(module, nn.Linear) and any(c.fullmatch(name) for c in compiled)
    ]
    if not names:
        raise ConfigError(f"no linear layer of {type(model).__name__} matches the LoRA targets")
    return names
