"""Everything about an input and the numbers of a run that can be checked before any model loads.

A user who gives a corrupt video, a symlink loop or ``--cfg nan`` must hear about it in one line
at once, not after an 11 GB weights message or a minute of model loading. The order every
command keeps is: inputs and numbers first (this module), then the weight files, then the load.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deepsound.errors import ConfigError, MediaError

if TYPE_CHECKING:
    from deepsound.config import PipelineConfig, RunOptions

# torch.Generator.manual_seed takes a 64-bit value; numpy and the CLI agree on this range
SEED_MAX = 2**63 - 1
PORT_RANGE = (1, 65535)


def check_path(path: Path) -> Path:
    """An existing input, or one line saying exactly why not (missing, a symlink loop, unreadable)."""
    from deepsound.media._open import check_input_path

    return check_input_path(path)


def _finite(name: str, value: Any) -> None:
    if value is not None and not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value}")


def check_run_numbers(options: RunOptions) -> None:
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


@dataclass
class InputFacts:
    """What the input check learned: the options to run with and warnings for the trace."""

    options: RunOptions
    warnings: list[str] = field(default_factory=list)
    still_image: bool = False


def check_input(video: Path, options: RunOptions, config: PipelineConfig) -> InputFacts:
    """Probe ``video`` (no model): a video stream, a still image with a duration, long enough."""
    from deepsound import media
    from deepsound.media.kinds import is_image_file
    from deepsound.steps.generate import minimum_duration

    check_path(video)
    info = media.probe(video)
    if not info.has_video:
        raise MediaError(f"{video}: has no video stream")
    facts = InputFacts(options)
    if is_image_file(video):
        # A still picture conditions the generator for the requested duration; there is no
        # video to put the audio on, so the result is audio only (and the trace says so).
        if options.duration is None:
            raise ConfigError(f"{video}: a still image has no length; give --duration")
        facts.options = options.replace(write_video=False)
        facts.warnings.append("still-image input: audio only, no video written")
        facts.still_image = True
    elif options.duration is None:
        facts.options = options.replace(duration=info.duration)
    length = facts.options.duration if facts.still_image else min(facts.options.duration, info.duration)
    need = minimum_duration(config)
    if length < need:
        what = "asked for" if facts.options.duration < info.duration else "of video"
        raise MediaError(
            f"{video}: {length:.2f} s {what}; the {config.generator.name} generator needs at least {need:.2f} s"
        )
    return facts
