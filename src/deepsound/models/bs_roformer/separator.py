"""Step 3: take the voice out of a soundtrack with BS-RoFormer.

The paper keeps the *instrumental*, i.e. the mix minus the estimated vocals
(not the model's own "other" estimate), so that whatever the model does not
recognise as voice stays in the track. We do the same, and keep the vocals as
evidence: their level and their share of the energy say how much was removed.

Any input works: mono is duplicated to the model's two channels (and the result
averaged back), more than two channels are separated one by one, any sample
rate is resampled to the model's 44.1 kHz and the result brought back, so that
``instrumental + vocals == input`` at the input's rate and length.

With ``output_format="model"`` (the reference pipeline's behaviour, set by ``--preset paper``)
the result stays where the model computed it: at 44.1 kHz, mono duplicated to stereo, the
length ``ceil(n * 44100 / rate)`` zero-padded (librosa's ``resample``), so that
``instrumental + vocals`` is the model's input. ``resample_quality`` picks soxr's quality for
every resampling here ("HQ" is librosa's, "VHQ" ours).

Optionally (``separate_only_speech``) the voice is removed only where a speech
detector hears speech: outside those segments the original mix is kept
untouched, with short linear cross-fades at the segment borders.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from deepsound.audio import RESAMPLE_QUALITIES, Audio
from deepsound.errors import ConfigError, WeightsError
from deepsound.interfaces import Placement, Separation, SpeechDetector
from deepsound.models.bs_roformer.config import BsRoformerConfig
from deepsound.models.bs_roformer.demix import demix
from deepsound.models.bs_roformer.network import BSRoformer, build_model, load_checkpoint
from deepsound.models.bs_roformer.settings import OUTPUT_FORMATS, WEIGHT_FILES, BsRoformerSettings
from deepsound.models.separation_common import (  # rms_db: re-exported for callers of this module
    levels,
    rms_db,  # noqa: F401
    vocals_at_input_rate,
    vocals_per_channel,
)
from deepsound.weights.loading import torch_dtype

log = logging.getLogger(__name__)

CHECKPOINT_NAME, CONFIG_NAME = WEIGHT_FILES
Progress = Callable[[int, int], None]


def speech_gain(
    segments: list[tuple[float, float]], num_samples: int, sample_rate: int, fade_s: float
) -> np.ndarray:
    """1 inside speech segments, 0 elsewhere, with linear ramps of ``fade_s`` just outside each segment."""
    gain = np.zeros(num_samples, dtype=np.float32)
    fade = max(int(round(fade_s * sample_rate)), 0)
    idx = np.arange(num_samples)
    for start_s, end_s in segments:
        a = int(np.clip(round(start_s * sample_rate), 0, num_samples))
        b = int(np.clip(round(end_s * sample_rate), 0, num_samples))
        if b <= a:
            continue
        gain[a:b] = 1.0
        if fade:
            lo = max(a - fade, 0)
            ramp_in = (idx[lo:a] - (a - fade) + 1) / (fade + 1)
            gain[lo:a] = np.maximum(gain[lo:a], ramp_in)
            hi = min(b + fade, num_samples)
            ramp_out = ((b + fade) - idx[b:hi]) / (fade + 1)
            gain[b:hi] = np.maximum(gain[b:hi], ramp_out)
    return gain


def _run_options(settings: BsRoformerSettings) -> dict[str, Any]:
    """How the step's settings run the model: the one mapping both constructors use."""
    return {
        "run_batch_size": settings.batch_size,
        "only_speech": settings.only_speech,
        "crossfade_s": settings.crossfade_s,
        "resample_quality": settings.resample_quality,
        "output_format": settings.output_format,
    }


class BsRoformerSeparator:
    """The :class:`~deepsound.interfaces.Separator` of step 3."""

    name = "bs_roformer"

    def __init__(
        self,
        model: BSRoformer,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        run_batch_size: int | None = None,
        speech_detector: SpeechDetector | None = None,
        only_speech: bool = False,
        crossfade_s: float = 0.1,
        resample_quality: str = "VHQ",
        output_format: str = "input",
        source: str = "",
    ) -> None:
        if resample_quality not in RESAMPLE_QUALITIES:
            raise ValueError(
                f"resample_quality must be one of {RESAMPLE_QUALITIES}, got {resample_quality!r}"
            )
        if output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output_format must be one of {OUTPUT_FORMATS}, got {output_format!r}")
        self.resample_quality = resample_quality
        self.output_format = output_format
        self.config: BsRoformerConfig = model.config
        self.device = torch.device(device)
        self.dtype = torch_dtype(dtype)
        self.model = model.to(device=self.device).to_compute_dtype(self.dtype).eval()
        # CPU: one chunk at a time keeps memory low at no cost in speed; GPUs like the configured batch.
        default_batch = self.config.batch_size if self.device.type == "cuda" else 1
        self.run_batch_size = max(1, run_batch_size or default_batch)
        self.speech_detector = speech_detector
        self.only_speech = only_speech
        if only_speech and speech_detector is None:
            raise ValueError("only_speech needs a speech detector")
        self.crossfade_s = crossfade_s
        self.source = source
        self.progress: Progress | None = None
        # set by the vocal-stem speech gate (deepsound.steps.stem_speech): a stem it made is reused here
        self.stem_cache: Any = None

    # --- construction --------------------------------------------------------------------------------

    @classmethod
    def from_files(
        cls, checkpoint: Path, config: Path | BsRoformerConfig | None = None, **kwargs: Any
    ) -> BsRoformerSeparator:
        """Build from a checkpoint and its YAML (or the built-in viperx numbers when ``config`` is None)."""
        if isinstance(config, BsRoformerConfig):
            cfg = config
        elif config is not None:
            cfg = BsRoformerConfig.from_yaml(Path(config))
        else:
            cfg = BsRoformerConfig.viperx()
        model = load_checkpoint(build_model(cfg), Path(checkpoint))
        kwargs.setdefault("source", str(checkpoint))
        return cls(model, **kwargs)

    @classmethod
    def with_settings(
        cls, model: BSRoformer, settings: BsRoformerSettings, **kwargs: Any
    ) -> BsRoformerSeparator:
        """``model`` run as ``settings`` say (the step's settings; device and dtype come in ``kwargs``)."""
        return cls(model, **{**_run_options(settings), **kwargs})

    @classmethod
    def from_settings(
        cls, settings: BsRoformerSettings, placement: Placement, **kwargs: Any
    ) -> BsRoformerSeparator:
        """The published viperx model, located (and fetched when allowed) through the weights registry."""
        from deepsound.weights.overrides import resolve_for

        checkpoint = resolve_for(placement, CHECKPOINT_NAME)
        try:
            yaml_path: Path | None = resolve_for(placement, CONFIG_NAME)
        except WeightsError as exc:  # the YAML only repeats numbers we also carry built in
            log.warning("BS-RoFormer config not found (%s); using the built-in viperx settings", exc)
            yaml_path = None
        detector = kwargs.pop("speech_detector", None)
        if settings.only_speech and detector is None:
            raise ConfigError("speech-gated separation needs the speech detector (built by the registry)")
        return cls.from_files(
            checkpoint,
            yaml_path,
            device=placement.resolved_device(),
            dtype=placement.resolved_dtype(),
            speech_detector=detector,
            **{**_run_options(settings), **kwargs},
        )

    # --- separation ----------------------------------------------------------------------------------

    def separate(self, audio: Audio) -> Separation:
        start = time.perf_counter()
        evidence: dict[str, Any] = {
            "model": "BS-RoFormer",
            "weights": self.source,
            "device": str(self.device),
            "dtype": str(self.dtype).replace("torch.", ""),
            "input_sample_rate": audio.sample_rate,
            "model_sample_rate": self.config.sample_rate,
            "chunk_size": self.config.chunk_size,
            "num_overlap": self.config.num_overlap,
            "resample_quality": self.resample_quality,
            "output_format": self.output_format,
        }
        # what the result is given as: the input itself, or the model's input (then computed once)
        mix = self.model_input(audio) if self.output_format == "model" else audio
        evidence["output_sample_rate"], evidence["output_channels"] = mix.sample_rate, mix.num_channels
        report = None
        if self.only_speech:
            assert self.speech_detector is not None
            report = self.speech_detector.detect(audio)
            evidence["only_speech"] = True
            evidence["speech_segments"] = [[round(a, 3), round(b, 3)] for a, b in report.segments]
            evidence["speech_ratio"] = round(float(report.speech_ratio), 4)
        if report is not None and not report.segments:
            vocals = np.zeros_like(mix.waveform)
            evidence["skipped"] = "no speech detected; the mix is kept as it is"
        else:
            if self.stem_cache is None:
                vocals = self._vocals(
                    audio, mix if self.output_format == "model" else self.model_input(audio)
                )
            else:  # the speech gate may have separated this very audio already (its vocals() is this)
                vocals, evidence["vocals_reused"] = self.stem_cache.vocals(self, audio)
            if report is not None:
                gain = speech_gain(report.segments, mix.num_samples, mix.sample_rate, self.crossfade_s)
                vocals = vocals * gain[None, :]
                evidence["gated_fraction"] = round(float(np.mean(gain > 0)), 4)
        instrumental = mix.waveform - vocals
        evidence.update(levels(mix.waveform, vocals, instrumental))
        evidence["seconds"] = round(time.perf_counter() - start, 3)
        return Separation(Audio(instrumental, mix.sample_rate), Audio(vocals, mix.sample_rate), evidence)

    def model_input(self, audio: Audio) -> Audio:
        """``audio`` at the model's rate; with ``output_format="model"`` also at the model's channel
        count where it maps onto it (mono duplicated, as the reference does; wider inputs keep theirs)
        and at librosa's length (``ceil``, zero-padded), so the result is the reference's file."""
        rate = self.config.sample_rate
        at_rate = audio.resample(rate, self.resample_quality)
        if self.output_format == "input":
            return at_rate
        at_rate = at_rate.fit_length(math.ceil(audio.num_samples * (rate / audio.sample_rate)))  # librosa's
        channels = self.config.audio_channels
        if at_rate.num_channels != channels and (at_rate.num_channels == 1 or channels == 1):
            at_rate = at_rate.to_channels(channels)
        return at_rate

    def vocals(self, audio: Audio) -> np.ndarray:
        """The vocal estimate for ``audio``: at its own rate, channel count and length, or with
        ``output_format="model"`` at :meth:`model_input`'s."""
        return self._vocals(audio, self.model_input(audio))

    def _vocals(self, audio: Audio, at_rate: Audio) -> np.ndarray:
        est = vocals_per_channel(at_rate, self.config.audio_channels, self._demix)
        if self.output_format == "model":
            return est
        return vocals_at_input_rate(audio, at_rate, est, self.resample_quality)

    def _demix(self, wave: np.ndarray) -> np.ndarray:
        mix = torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32))
        mean = std = None
        if self.config.normalize:
            mono = mix.mean(dim=0)
            mean, std = mono.mean(), mono.std()
            mix = (mix - mean) / std if std > 0 else mix - mean
        with torch.inference_mode():
            stems = demix(
                self.model,
                mix,
                chunk_size=self.config.chunk_size,
                num_overlap=self.config.num_overlap,
                window_batch_size=self.config.batch_size,
                run_batch_size=self.run_batch_size,
                device=self.device,
                progress=self.progress,
            )
        target = self.config.instruments.index("vocals") if "vocals" in self.config.instruments else 0
        out = stems[target]
        if mean is not None and std is not None:
            out = out * (std if std > 0 else 1.0) + mean
        return out.numpy()
