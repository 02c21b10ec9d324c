"""Tiny real components for the experiment, reference-set and Ray tests (importable by Ray workers).

* generator ``tiny-mmaudio``: the real MMAudio architecture at toy size, seeded by variant
  (``tiny-mmaudio:small_16k`` and ``tiny-mmaudio:medium_16k`` are two different backends);
* generator ``recording``: a registered test generator that plays a known soundtrack (a real
  speech recording for clips whose name holds ``voice``, a tone otherwise), because the tiny
  networks cannot be steered to speak; everything after it (Silero, BS-RoFormer, the silence
  check, every feature model) is real;
* separator ``tiny-roformer``: BS-RoFormer at toy size with chunks a test can afford;
* the feature models of the evaluation at tiny size (PaSST, ImageBind and Synchformer narrowed;
  PANNs Cnn14 and VGGish as they are, with seeded weights; Silero as published), built once per
  process: :func:`tiny_extractors` is what a Ray worker calls to make its model set.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from deepsound.audio import Audio
from deepsound.evaluation.extractors import Settings

SPEECH = Path(__file__).parent / "data" / "eval_audio" / "speech.flac"
_MODELS: dict[str, Any] = {}


def speech_audio(seconds: float, rate: int = 16000, level: float = 0.6) -> Audio:
    """The speech recording (4.3 s), resampled, padded with a quiet tone to ``seconds``."""
    wav, sr = sf.read(SPEECH, dtype="float32", always_2d=True)
    mono = Audio(wav.T, sr).resample(rate).waveform[0]
    mono = level * mono / max(1e-6, float(np.abs(mono).max()))
    t = np.arange(int(rate * seconds)) / rate
    out = (0.05 * np.sin(2 * np.pi * 330 * t)).astype(np.float32)
    out[: min(len(out), len(mono))] += mono[: len(out)]
    return Audio(out[None], rate)


def tone_audio(seconds: float, freq: float, rate: int = 16000) -> Audio:
    t = np.arange(int(rate * seconds)) / rate
    return Audio((0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)[None], rate)


class RecordingGenerator:
    """Plays a known soundtrack: speech for clips named ``*voice*``, else a tone (pitch by prompt)."""

    name = "recording"
    sample_rate = 16000

    def __init__(self) -> None:
        self.requests: list[Any] = []

    def generate(self, request: Any) -> Audio:
        self.requests.append(request)
        neg = "human voice" in request.negative_prompt
        if request.video is not None and "voice" in Path(request.video).stem and not neg:
            return speech_audio(request.duration)
        return tone_audio(request.duration, 660.0 if neg else 440.0)


@dataclass
class TinyMMAudioSettings:
    """A tiny generator's variant: which seed (and 16k / 44k decoder) its random weights take."""

    variant: str = "small_16k"


def _tiny_mmaudio(settings: TinyMMAudioSettings, _: Any) -> Any:
    from deepsound.testing import tiny as toy

    variant = settings.variant
    return toy.mmaudio_generator(
        seed=zlib.crc32(variant.encode()) % 1000, mode="44k" if "44k" in variant else "16k"
    )


def _tiny_roformer(_: Any, __: Any) -> Any:
    from deepsound.models.bs_roformer.config import BsRoformerConfig
    from deepsound.testing import tiny as toy

    return toy.bs_roformer_separator(seed=0, config=BsRoformerConfig.tiny(chunk_size=8000, batch_size=8))


def register_components() -> None:
    """Make the test components available by name (in this process; workers call it too)."""
    from deepsound.registry import register

    register("generator", "tiny-mmaudio", _tiny_mmaudio, settings=TinyMMAudioSettings,
             sample_rate=lambda s: 44100 if "44k" in s.variant else 16000)  # fmt: skip
    register("generator", "recording", lambda _, __: RecordingGenerator(), sample_rate=16000)
    register("separator", "tiny-roformer", _tiny_roformer)


def unregister_components() -> None:
    from deepsound.registry import unregister

    for kind, name in (
        ("generator", "tiny-mmaudio"),
        ("generator", "recording"),
        ("separator", "tiny-roformer"),
    ):
        unregister(kind, name)


def _network(name: str) -> Any:
    """One tiny (or seeded full-size) network, built once per process on first use."""
    if name not in _MODELS:
        from deepsound.models.eval import Cnn14, PaSST, VGGish
        from deepsound.models.eval import synchformer_audio as sfa
        from deepsound.models.eval.imagebind import ImageBindAV, ImageBindConfig
        from deepsound.testing.equivalence import fill_seeded

        torch.manual_seed(0)
        if name == "synchformer":
            visual = sfa.SynchformerConfig(embed_dim=32, depth=1, num_heads=4)
            config = sfa.SynchformerAVConfig(
                dim=32, audio_depth=1, audio_heads=4, audio_mlp=64, head_depth=1, head_heads=4, visual=visual
            )
        build = {
            "panns": lambda: Cnn14(), "vggish": lambda: VGGish(), "passt": lambda: PaSST(dim=64, depth=2, heads=4),
            "imagebind": lambda: fill_seeded(ImageBindAV(ImageBindConfig.tiny()), 3),
            "synchformer": lambda: fill_seeded(sfa.SynchformerAV(config), 5),
        }  # fmt: skip
        _MODELS[name] = build[name]().eval()
    return _MODELS[name]


def tiny_extractors(settings: Settings, only: tuple[str, ...] | None = None) -> dict[tuple[str, str], Any]:
    """The models of the metrics, real code at tiny size, by (name, modality), plus the DeSync head;
    ``only`` limits them to some model names (what a Ray worker of a small test builds)."""
    from deepsound.evaluation import builtin_models as bm

    def wanted(name: str) -> bool:
        return only is None or name in only

    out: dict[tuple[str, str], Any] = {}
    if wanted("panns"):
        out[("panns", "audio")] = bm.PannsExtractor(settings, _network("panns"), "seeded-0")
    if wanted("vggish"):
        out[("vggish", "audio")] = bm.VggishExtractor(settings, _network("vggish"), "seeded-0")
    if wanted("passt"):
        out[("passt", "audio")] = bm.PasstExtractor(settings, _network("passt"), "seeded-0")
    if wanted("imagebind"):
        out[("imagebind", "audio")] = bm.ImageBindAudioExtractor(settings, _network("imagebind"), "seeded-3")
        out[("imagebind", "video")] = bm.ImageBindVideoExtractor(settings, _network("imagebind"), "seeded-3")
    if wanted("synchformer"):
        sync = _network("synchformer")
        out[("synchformer", "audio")] = bm.SynchformerAudioExtractor(settings, sync, "seeded-5")
        out[("synchformer", "video")] = bm.SynchformerVideoExtractor(settings, sync, "seeded-5")

        @torch.inference_mode()
        def head(video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
            return sync.compare_v_a(video, audio).float().cpu()

        out[("synchformer", "head")] = head
    if wanted("silero"):
        out[("silero", "audio")] = bm.SileroExtractor(settings)
    return out


def install_extractors(monkeypatch: Any) -> None:
    """Make the evaluation build the tiny models by name (``evaluate`` and ``experiment`` CLIs)."""
    from deepsound.evaluation import extractors as ex

    ex._load_defaults()
    for (name, modality), _ in tiny_extractors(Settings()).items():
        if modality == "head":
            monkeypatch.setitem(ex._HEADS, name, lambda s: tiny_extractors(s)[("synchformer", "head")])
        else:
            monkeypatch.setitem(
                ex._FACTORIES, (name, modality), lambda s, k=(name, modality): tiny_extractors(s)[k]
            )


# ----------------------------------------------------------------------------- Ray workers
def reference_pipeline() -> Any:
    """The pipeline whose judge (Silero) and separator (tiny BS-RoFormer) build a VO-Free set;
    called in each Ray worker's own process, so it registers the test components there too."""
    from deepsound.config import PipelineConfig, SeparatorConfig
    from deepsound.pipeline import Pipeline

    register_components()
    return Pipeline(
        PipelineConfig(judge="speech", separator=SeparatorConfig(name="tiny-roformer"), device="cpu")
    )


def ledger_counts(path: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            counts[line.split()[0]] = counts.get(line.split()[0], 0) + 1
    return counts


def ledger_reference_job(out: Path, fingerprint: str, ledger: str, pause: float) -> Any:
    """A :class:`ReferenceJob` that also appends ``<clip> <pid>`` to a shared ledger after each
    finished clip (so a test counts real completions) and takes ``pause`` s per clip (so a
    worker can be killed in the middle of one)."""
    import os
    import time

    from deepsound.evaluation.reference_set import ReferenceJob

    class LedgerJob(ReferenceJob):
        def run(self, clip: Any) -> dict[str, Any]:
            time.sleep(pause)
            record = super().run(clip)
            with open(ledger, "a", encoding="utf-8") as fh:
                fh.write(f"{clip.stem} {os.getpid()}\n")
            return record

    return LedgerJob(out, reference_pipeline, fingerprint)
