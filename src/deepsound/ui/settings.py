"""The page's own settings (the models' settings stay in :class:`~deepsound.config.PipelineConfig`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from deepsound.config import RunOptions
from deepsound.registry import available


@dataclass
class UiSettings:
    """Where the page listens, what it offers, and the limits that keep a shared server healthy."""

    host: str = "127.0.0.1"
    port: int = 7860
    share: bool = False  # a public gradio.live link; off unless asked for
    defaults: RunOptions = field(default_factory=RunOptions)  # the Generate tab's initial options
    # choices of the generator's first setting with choices (MMAudio's variant); None: all it declares
    variants: tuple[str, ...] | None = None
    # every registered judge (a user's own too), known when the page is built
    judges: tuple[str, ...] = field(default_factory=lambda: tuple(available("judge")))
    max_input_seconds: float | None = 600.0  # longer uploads are refused with a message
    max_upload_mb: int = 500
    session_ttl_seconds: float = 3600.0  # an idle session's files are removed after this
    concurrency: int = 1  # runs at once; the models are shared, so one is the safe default
    max_queue: int = 32
    title: str = "DeepSound: a soundtrack for your video, step by step"
