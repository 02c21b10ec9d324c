"""What the evaluation hands a feature model and what a feature model must offer: the types only.

Kept apart from :mod:`deepsound.evaluation.extractors` (which registers the built-in
models) so that the models' module and the file discovery can use them without an
import cycle.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import torch

Modality = Literal["audio", "video"]


@dataclass
class Source:
    """One input file and its stem; the decoded audio is read once and shared by all extractors."""

    stem: str
    path: Path
    loader: Callable[[Path], tuple[torch.Tensor, int]] | None = None
    silent_seconds: float | None = None  # a clip whose audio the `rm` fallback removed

    @property
    def raw(self) -> tuple[torch.Tensor, int]:
        """``(channels, samples)`` float32 at the file's own rate, as ``torchaudio.load`` gives it.

        The last few files decoded are kept, so the models that ask for the same file one
        after another decode it once, without holding a whole folder's audio in memory.
        """
        if self.silent_seconds is not None:
            rate = 16000
            return torch.zeros(1, int(round(self.silent_seconds * rate))), rate
        if self.loader is None:
            from deepsound.evaluation.audio import decode  # every channel at the file's own rate

            return _decoded(str(self.path), decode)
        return _decoded(str(self.path), self.loader)


@lru_cache(maxsize=4)
def _decoded(path: str, loader: Callable[[Path], tuple[torch.Tensor, int]]) -> tuple[torch.Tensor, int]:
    return loader(Path(path))


@dataclass(frozen=True)
class Settings:
    """What every extractor needs to know about a run."""

    duration: float = 10.0  # seconds of audio / video evaluated (av-benchmark's --audio_length)
    device: str = "cpu"
    weights_dir: Path | None = None
    offline: bool = False
    extra: dict[str, Any] = field(default_factory=dict)
    # the run's pipeline configuration (config.PipelineConfig): the voice-over rate is heard by its
    # speech detector, the one the method's gate uses; None means the default configuration
    pipeline: Any = None


@runtime_checkable
class Extractor(Protocol):
    """One feature model on one modality."""

    name: str  # e.g. "panns"; with the modality, the key of its manifest entry
    modality: Modality
    files: tuple[str, ...]  # av-benchmark cache files it fills, e.g. ("pann_features.pth",)

    def fingerprint(self) -> dict[str, Any]:
        """Weight checksum and settings: a change means every cached entry is stale."""
        ...

    def extract(self, source: Source) -> dict[str, Any]:
        """Cache file name → this file's entry (a tensor, or a dict of tensors for PANNs)."""
        ...


class OffsetHead(Protocol):
    """Synchformer's audio-visual offset classifier (``compare_v_a``): logits over the 21 offsets."""

    def __call__(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor: ...
