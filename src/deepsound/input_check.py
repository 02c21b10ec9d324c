"""Everything about an input and the numbers of a run that can be checked before any model loads.

A user who gives a corrupt video, a symlink loop or ``--cfg nan`` must hear about it in one line
at once, not after an 11 GB weights message or a minute of model loading. The order every
command keeps is: inputs and numbers first (this module), then the weight files, then the load.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from deepsound.errors import ConfigError, MediaError
from deepsound.run_numbers import (  # noqa: F401  (re-exported: the commands check numbers here)
    PORT_RANGE,
    SEED_MAX,
    check_port,
    check_positive_int,
    check_run_numbers,
)

if TYPE_CHECKING:
    from deepsound.config import PipelineConfig, RunOptions


def check_path(path: Path) -> Path:
    """An existing input, or one line saying exactly why not (missing, a symlink loop, unreadable)."""
    from deepsound.media._open import check_input_path

    return check_input_path(path)


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
    from deepsound.steps.generate import duration_range

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
    need, most = duration_range(config)
    if length < need:
        what = "asked for" if facts.options.duration < info.duration else "of video"
        raise MediaError(
            f"{video}: {length:.2f} s {what}; the {config.generator.name} generator needs at least {need:.2f} s"
        )
    window = facts.options.window
    if most is not None and length > most and (window is None or window > most):
        raise ConfigError(
            f"{video}: {length:.2f} s in one pass; the {config.generator.name} generator makes "
            f"at most {most:.2f} s at a time: give --window {most:g} (or less), or a shorter --duration"
        )
    return facts
