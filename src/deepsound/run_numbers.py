"""The numbers of a run, checked with messages that name the option and its valid range.

A leaf module (it imports only the errors) so that the settings types themselves can check
their numbers on construction without an import cycle through the input check.
"""

from __future__ import annotations

import math
from typing import Any

from deepsound.errors import ConfigError

# torch.Generator.manual_seed takes a 64-bit value; numpy and the CLI agree on this range
SEED_MAX = 2**63 - 1
PORT_RANGE = (1, 65535)


def _finite(name: str, value: Any) -> None:
    if value is not None and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value}")


def check_run_numbers(options: Any) -> None:  # a RunOptions (typed loosely: this module is a leaf)
    """The run's numbers, with messages that name the option and the valid range."""
    if isinstance(options.seed, bool) or not isinstance(options.seed, int):
        raise ConfigError(f"seed must be a whole number, got {options.seed!r}")
    if not 0 <= options.seed <= SEED_MAX:
        raise ConfigError(f"seed must be in [0, 2**63 - 1], got {options.seed}")
    for name in ("cfg_strength", "duration", "window", "window_overlap"):
        _finite(name.replace("_strength", "").replace("_", " "), getattr(options, name))
    if options.cfg_strength < 0:
        raise ConfigError(f"cfg must be 0 or more, got {options.cfg_strength}")
    if options.duration is not None and not options.duration > 0:
        raise ConfigError(f"duration must be positive, got {options.duration}")
    if options.window is not None:
        if not options.window > 0:
            raise ConfigError(f"window must be a positive number of seconds, got {options.window}")
        if not 0 <= options.window_overlap < options.window:
            raise ConfigError(
                f"window ({options.window} s) must be longer than its overlap ({options.window_overlap} s), "
                f"and the overlap 0 or more"
            )
    if options.num_steps < 1:
        raise ConfigError(f"number of steps must be at least 1, got {options.num_steps}")


def check_positive_int(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigError(f"{name} must be a whole number of at least 1, got {value!r}")


def check_port(port: int) -> None:
    low, high = PORT_RANGE
    if not low <= port <= high:
        raise ConfigError(f"port must be in [{low}, {high}], got {port}")
