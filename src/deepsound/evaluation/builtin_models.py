"""The built-in feature models behind the extractor names, wired to :mod:`deepsound.models.eval`.

Each factory builds its network on first call and wraps it in the
:class:`~deepsound.evaluation.extractors.Extractor` protocol: the av-benchmark
preprocessing lives with the models (:mod:`deepsound.evaluation.audio`,
:mod:`deepsound.evaluation.video`), this module only says which cache file
each output goes to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from deepsound.evaluation.features import Settings, Source
from deepsound.interfaces import SpeechDetector


class SileroExtractor:
    """The configured speech detector on the evaluated stretch of each file: ``tensor([speech_ratio, segments])``.

    The name (and av-benchmark-style cache file) says "silero" for the caches written before the
    detector became a setting; the detector itself is the run's ``[pipeline.speech]``.
    """

    name = "silero"
    modality = "audio"
    files = ("silero_speech.pth",)

    def __init__(self, settings: Settings, detector: SpeechDetector | None = None) -> None:
        from deepsound.config import PipelineConfig, to_plain

        self.settings = settings
        # the configured speech detector (the method's gate) and its own settings: changing them
        # invalidates the cache
        config = settings.pipeline if settings.pipeline is not None else PipelineConfig()
        section = config.speech
        self.detector_settings: dict[str, Any] = {"name": section.name, **(to_plain(section.selected) or {})}
        if detector is None:  # built through the registry, shared with any pipeline of the same configuration
            from deepsound.registry import Components

            detector = Components(config).speech
        else:
            self.detector_settings = {"name": detector.name}
        rule = getattr(detector, "rule", None)  # a fitted gate's weights are not settings: refitting them
        if dataclasses.is_dataclass(rule):  # must invalidate the cache all the same
            self.detector_settings["rule"] = dataclasses.asdict(rule)
        self.detector = detector

    def fingerprint(self) -> dict[str, Any]:
        return {"model": self.detector_settings, "duration": self.settings.duration}

    def extract(self, source: Source) -> dict[str, Any]:
        from deepsound.audio import Audio

        wav, rate = source.raw
        wav = wav[:, : int(rate * self.settings.duration)]
        report = self.detector.detect(Audio(wav.numpy(), rate))
        return {self.files[0]: torch.tensor([report.speech_ratio, float(len(report.segments))])}


def weight_file(name: str, settings: Settings) -> tuple[Path, str]:
    """Local path of registry entry ``name`` (explicit → --weights-dir → cache → download unless
    offline) and its sha256, taken from the verification stamp when the file was checked before."""
    from deepsound.weights.checksum import cached_digest
    from deepsound.weights.resolve import default_cache_dir, resolve, stamp_dir_for

    path = resolve(name, weights_dir=settings.weights_dir, offline=settings.offline)
    return path, cached_digest(path, "sha256", stamp_dir_for(default_cache_dir()))


class _AudioModel:
    """Common part of the audio extractors: weights, fingerprint, av-benchmark's audio preparation."""

    name = ""
    modality = "audio"
    files: tuple[str, ...] = ()
    weights = ""  # registry entry
    sample_rate = 16000
    version = 1  # bump when the preprocessing changes, so caches are renewed

    def __init__(self, settings: Settings, model: Any = None, checksum: str | None = None) -> None:
        self.settings = settings
        if model is None:
            path, checksum = weight_file(self.weights, settings)
            model = self.load(path, settings.device)
        self.model, self.checksum = model, checksum

    def load(self, path: Path, device: str) -> Any:
        raise NotImplementedError

    def fingerprint(self) -> dict[str, Any]:
        return {
            "model": self.name, "weights": self.weights, "sha256": self.checksum, "version": self.version,
            "duration": self.settings.duration, "sample_rate": self.sample_rate,
        }  # fmt: skip

    def wave(self, source: Source) -> torch.Tensor:
        """av-benchmark's ``AudioDataset``: channel mean, DC removal, float64-kernel resampler, crop."""
        from deepsound.evaluation.audio import prepare_for_features

        wav, rate = source.raw
        return prepare_for_features(wav, rate, self.sample_rate, self.settings.duration)[None]


class PannsExtractor(_AudioModel):
    name, files, weights = "panns", ("pann_features.pth",), "panns_cnn14_16k"

    def load(self, path: Path, device: str) -> Any:
        from deepsound.models.eval import load_panns

        return load_panns(path, device)

    def extract(self, source: Source) -> dict[str, Any]:
        from deepsound.models.eval import panns_features

        out = panns_features(self.model, self.wave(source))
        return {self.files[0]: {k: v[0].clone() for k, v in out.items()}}


class VggishExtractor(_AudioModel):
    name, files, weights = "vggish", ("vggish_features.pth",), "vggish"

    def load(self, path: Path, device: str) -> Any:
        from deepsound.models.eval import load_vggish

        return load_vggish(path, device)

    def extract(self, source: Source) -> dict[str, Any]:
        from deepsound.models.eval import vggish_features

        wave = self.wave(source)
        if wave.shape[-1] < int(0.96 * self.sample_rate):
            raise ValueError("shorter than VGGish's 0.96 s example")
        return {self.files[0]: vggish_features(self.model, wave)[0].clone()}


class PasstExtractor(_AudioModel):
    name, files, weights = "passt", ("passt_features_embed.pth", "passt_logits.pth"), "passt_s_swa"
    sample_rate = 32000

    def load(self, path: Path, device: str) -> Any:
        from deepsound.models.eval import load_passt

        return load_passt(path, device)

    def extract(self, source: Source) -> dict[str, Any]:
        from deepsound.models.eval import passt_features

        out = passt_features(self.model, self.wave(source))
        return {self.files[0]: out["features_embed"][0].clone(), self.files[1]: out["logits"][0].clone()}


_SHARED: dict[tuple[str, str, str], tuple[Any, str]] = {}


def shared_network(weights: str, settings: Settings, load: Callable[[Path, str], Any]) -> tuple[Any, str]:
    """One network per weight file and device, shared by the audio branch, the video branch and
    the offset head of the same model (Synchformer, ImageBind)."""
    key = (weights, str(settings.weights_dir), settings.device)
    if key not in _SHARED:
        path, checksum = weight_file(weights, settings)
        _SHARED[key] = (load(path, settings.device), checksum)
    return _SHARED[key]


def _load_synchformer(path: Path, device: str) -> Any:
    from deepsound.models.eval.synchformer_audio import load_synchformer_av

    return load_synchformer_av(path, device)


class SynchformerAudioExtractor(_AudioModel):
    """av-benchmark's ``SynchformerAudioDataset`` + ``encode_audio_with_sync``: exactly ``duration``
    seconds at 16 kHz (channel mean, no DC removal); a shorter file is an error, not the next file."""

    name, files, weights = "synchformer", ("synchformer_audio.pth",), "synchformer"

    def __init__(self, settings: Settings, model: Any = None, checksum: str | None = None) -> None:
        if model is None:
            model, checksum = shared_network(self.weights, settings, _load_synchformer)
        super().__init__(settings, model, checksum)

    def wave(self, source: Source) -> torch.Tensor:
        from deepsound.errors import MediaError
        from deepsound.evaluation.audio import sinc_resample

        wav, rate = source.raw
        mono = wav.mean(dim=0)
        if rate != self.sample_rate:
            mono = sinc_resample(mono, rate, self.sample_rate, "float64")
        expected = int(self.sample_rate * self.settings.duration)
        if mono.shape[0] < expected:
            raise MediaError(
                f"audio is {mono.shape[0] / self.sample_rate:.2f} s, shorter than the "
                f"{self.settings.duration:g} s DeSync evaluates"
            )
        return mono[:expected]

    def extract(self, source: Source) -> dict[str, Any]:
        from deepsound.models.eval.synchformer_audio import synchformer_audio_features

        return {self.files[0]: synchformer_audio_features(self.model, self.wave(source)).clone()}


def synchformer_head(settings: Settings) -> Any:
    model, _ = shared_network("synchformer", settings, _load_synchformer)

    @torch.inference_mode()
    def compare(video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        device = next(model.parameters()).device
        return model.compare_v_a(video.to(device), audio.to(device)).float().cpu()

    return compare


def _load_imagebind(path: Path, device: str) -> Any:
    from deepsound.models.eval.imagebind import load_imagebind

    return load_imagebind(path, device)


class ImageBindAudioExtractor(_AudioModel):
    """ImageBind's loader as av-benchmark calls it: every channel, the float32-kernel resampler,
    the whole file (ImageBind samples three 2 s clips over all of it; no crop to ``duration``)."""

    name, files, weights = "imagebind", ("imagebind_audio.pth",), "imagebind_huge"

    def __init__(self, settings: Settings, model: Any = None, checksum: str | None = None) -> None:
        if model is None:
            model, checksum = shared_network(self.weights, settings, _load_imagebind)
        super().__init__(settings, model, checksum)

    def fingerprint(self) -> dict[str, Any]:
        return {**super().fingerprint(), "duration": None}  # the whole file, whatever --duration says

    def extract(self, source: Source) -> dict[str, Any]:
        from deepsound.evaluation.audio import sinc_resample
        from deepsound.models.eval.imagebind import imagebind_features

        wav, rate = source.raw
        if rate != self.sample_rate:
            wav = sinc_resample(wav, rate, self.sample_rate, "float32")
        return {self.files[0]: imagebind_features(self.model, None, wav)["audio"].clone()}


class _VideoModel:
    modality = "video"
    name = ""
    files: tuple[str, ...] = ()
    weights = ""
    version = 1

    def __init__(self, settings: Settings, model: Any = None, checksum: str | None = None) -> None:
        self.settings = settings
        if model is None:
            model, checksum = shared_network(self.weights, settings, self.loader())
        self.model, self.checksum = model, checksum

    def loader(self) -> Callable[[Path, str], Any]:
        raise NotImplementedError

    def fingerprint(self) -> dict[str, Any]:
        return {
            "model": self.name, "weights": self.weights, "sha256": self.checksum, "version": self.version,
            "duration": self.settings.duration, "modality": "video",
        }  # fmt: skip


class ImageBindVideoExtractor(_VideoModel):
    """av-benchmark's ``VideoDataset`` at 0.5 fps, three spatial crops, 2-frame clips."""

    name, files, weights = "imagebind", ("imagebind_video.pth",), "imagebind_huge"

    def loader(self) -> Callable[[Path, str], Any]:
        return _load_imagebind

    def extract(self, source: Source) -> dict[str, Any]:
        from deepsound.models.eval.imagebind import imagebind_features

        out = imagebind_features(self.model, source.path, None, duration=self.settings.duration)
        return {self.files[0]: out["video"].clone()}


class SynchformerVideoExtractor(_VideoModel):
    """av-benchmark's ``VideoDataset`` at 25 fps (224 px, centre crop, [-1, 1]), windows of 16 frames."""

    name, files, weights = "synchformer", ("synchformer_video.pth",), "synchformer"

    def loader(self) -> Callable[[Path, str], Any]:
        return _load_synchformer

    def extract(self, source: Source) -> dict[str, Any]:
        from deepsound.evaluation.video import decode_eval_video
        from deepsound.models.eval.synchformer_audio import synchformer_video_features

        frames = decode_eval_video(source.path, self.settings.duration, imagebind=False, sync=True).sync
        return {self.files[0]: synchformer_video_features(self.model, frames).clone()}


FACTORIES: dict[tuple[str, str], Callable[[Settings], Any]] = {
    ("silero", "audio"): SileroExtractor,
    ("panns", "audio"): PannsExtractor,
    ("vggish", "audio"): VggishExtractor,
    ("passt", "audio"): PasstExtractor,
    ("synchformer", "audio"): SynchformerAudioExtractor,
    ("imagebind", "audio"): ImageBindAudioExtractor,
    ("imagebind", "video"): ImageBindVideoExtractor,
    ("synchformer", "video"): SynchformerVideoExtractor,
}
HEADS: dict[str, Callable[[Settings], Any]] = {"synchformer": synchformer_head}
