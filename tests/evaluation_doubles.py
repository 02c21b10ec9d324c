"""Tiny stand-ins for the five feature models, for testing the evaluation's orchestration.

Each double really reads the file it is given (through the runner's shared
decoder) and derives its features from the samples with a fixed random
projection, so different audio gives different features, identical audio
identical ones, and a file that cannot be decoded fails exactly as it would
for a real model. The PANNs double puts its speech logit high for clips
whose energy is amplitude-modulated at a syllable rate (4 Hz), which is how
the tests make "speech". Call counters let tests see what was re-extracted.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

import numpy as np
import torch

from deepsound.evaluation.extractors import Settings, Source

CALLS: Counter = Counter()


def _project(name: str, x: torch.Tensor, dim: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(int(hashlib.sha256(name.encode()).hexdigest()[:8], 16))
    w = torch.randn(x.numel(), dim, generator=gen) / x.numel() ** 0.5
    return x.flatten() @ w


def _spectrum(source: Source, rate: int, duration: float, bins: int = 32) -> tuple[torch.Tensor, float]:
    wav, sr = source.raw
    mono = wav.mean(0)
    mono = mono - mono.mean()
    if sr != rate:
        mono = torch.from_numpy(
            np.interp(np.arange(0, len(mono), sr / rate), np.arange(len(mono)), mono.numpy())
        )
    mono = mono[: int(rate * duration)].float()
    if mono.numel() < rate // 10:
        raise ValueError(f"{source.path.name}: shorter than 0.1 s")
    spec = torch.fft.rfft(mono).abs()
    pooled = torch.nn.functional.adaptive_avg_pool1d(spec.view(1, 1, -1), bins).flatten()
    env = mono.view(-1)[: (len(mono) // 400) * 400].view(-1, 400).abs().mean(1)  # 40 Hz at 16 kHz
    env_spec = torch.fft.rfft(env - env.mean()).abs()
    freqs = torch.fft.rfftfreq(len(env), d=400 / rate)
    band = (freqs > 3) & (freqs < 6)
    modulation = float(env_spec[band].sum() / (env_spec.sum() + 1e-9))
    return torch.log1p(pooled), modulation


class FakeAudioModel:
    modality = "audio"

    def __init__(self, name: str, settings: Settings) -> None:
        self.name = name
        self.settings = settings
        self.files = {
            "panns": ("pann_features.pth",),
            "vggish": ("vggish_features.pth",),
            "passt": ("passt_features_embed.pth", "passt_logits.pth"),
            "imagebind": ("imagebind_audio.pth",),
            "synchformer": ("synchformer_audio.pth",),
            "silero": ("silero_speech.pth",),
        }[name]

    def fingerprint(self) -> dict[str, Any]:
        return {"double": self.name, "duration": self.settings.duration}

    def extract(self, source: Source) -> dict[str, Any]:
        CALLS[(self.name, "audio", source.stem)] += 1
        spec, modulation = _spectrum(source, 16000, self.settings.duration)
        if self.name == "panns":
            logits = _project("panns/logits", spec, 527) - 3.0
            logits[0] = 6.0 if modulation > 0.3 else -6.0
            return {"pann_features.pth": {"2048": torch.relu(_project("panns/2048", spec, 16)),
                                          "logits": logits, "clipwise_output": torch.sigmoid(logits)}}  # fmt: skip
        if self.name == "vggish":
            return {"vggish_features.pth": _project("vggish", spec, 24).view(3, 8)}
        if self.name == "passt":
            return {"passt_features_embed.pth": _project("passt/e", spec, 12),
                    "passt_logits.pth": _project("passt/l", spec, 527)}  # fmt: skip
        if self.name == "imagebind":
            return {"imagebind_audio.pth": _project("ib", spec, 8)}
        if self.name == "synchformer":
            wav, _ = source.raw
            if wav.shape[-1] / source.raw[1] < self.settings.duration - 1e-6:
                raise ValueError(
                    f"audio is shorter than {self.settings.duration} s; DeSync needs the whole clip"
                )
            return {"synchformer_audio.pth": _project("sync/a", spec, 16 * 6 * 4).view(16, 6, 4)}
        return {"silero_speech.pth": torch.tensor([modulation, float(modulation > 0.3)])}


class FakeVideoModel:
    """Video 'features' from the file's bytes: the runner's video path, without decoding."""

    modality = "video"

    def __init__(self, name: str, settings: Settings) -> None:
        self.name = name
        self.settings = settings
        self.files = ("imagebind_video.pth",) if name == "imagebind" else ("synchformer_video.pth",)

    def fingerprint(self) -> dict[str, Any]:
        return {"double": self.name}

    def extract(self, source: Source) -> dict[str, Any]:
        CALLS[(self.name, "video", source.stem)] += 1
        data = source.path.read_bytes()
        x = torch.tensor(list(hashlib.sha256(data).digest()), dtype=torch.float32) / 255
        if self.name == "imagebind":
            return {"imagebind_video.pth": _project("ibv", x, 8)}
        return {"synchformer_video.pth": _project("sync/v", x, 16 * 8 * 4).view(16, 8, 4)}


def fake_head(video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
    """Offset logits that depend on both inputs (argmax somewhere on the 21-class grid)."""
    score = (video.mean(dim=(1, 2)) @ torch.ones(video.shape[-1], 21)) * torch.linspace(-1, 1, 21)
    return score + audio.mean(dim=(1, 2)).sum(-1, keepdim=True) * torch.linspace(1, -1, 21)


def install(monkeypatch) -> None:  # noqa: ANN001
    """Register the doubles as the five models (and Silero) for the duration of a test."""
    from deepsound.evaluation import extractors

    extractors._load_defaults()
    for name in ("panns", "vggish", "passt", "imagebind", "synchformer", "silero"):
        monkeypatch.setitem(extractors._FACTORIES, (name, "audio"), lambda s, n=name: FakeAudioModel(n, s))
    for name in ("imagebind", "synchformer"):
        monkeypatch.setitem(extractors._FACTORIES, (name, "video"), lambda s, n=name: FakeVideoModel(n, s))
    monkeypatch.setitem(extractors._HEADS, "synchformer", lambda s: fake_head)
    CALLS.clear()
