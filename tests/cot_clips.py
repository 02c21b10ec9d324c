"""Clips whose voice-over status is known by construction, for the dataset and fine-tuning tests.

Each clip is a PyAV-written test pattern with its own soundtrack (tones or noise)
and a *kind* saying what the step-1 stand-in returns for it:

``vo``        its own soundtrack with espeak-ng speech mixed in (the scene holds no speech): voice-over, A
``clean``     its own soundtrack, unchanged (no speech anywhere): B
``onscreen``  a soundtrack that already holds speech, returned unchanged: on-screen speech, B
``mute``      no soundtrack at all: skipped

:class:`SoundtrackGenerator` is orchestration only: the real generator's output
for a given video cannot be steered to hold speech or not, so the stand-in
returns audio whose content the test knows, and everything after it (speech
detection, labelling, writing, training) is real.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from media_factory import make_video

from deepsound.audio import Audio
from deepsound.interfaces import GenerationRequest
from deepsound.testing import tiny as toy

RATE = 16000
SECONDS = 2.0
_TEXTS = ("hello there, how are you today", "this is the news at nine", "please listen to me now")


def espeak_available() -> bool:
    """Present, or (only outside CI) absent: under ``CI`` a missing espeak-ng fails the run."""
    from ci_tools import tool_available

    return tool_available("espeak-ng", "apt-get install espeak-ng")


def speech(folder: Path, index: int) -> np.ndarray:
    """About a second and a half of espeak-ng speech at 16 kHz, voice and speed varied with ``index``."""
    import soundfile as sf

    path = folder / f"speech{index}.wav"
    args = ["espeak-ng", "-s", str(150 + 15 * (index % 4)), "-p", str(30 + 10 * (index % 5)), "-w", str(path)]
    subprocess.run([*args, _TEXTS[index % len(_TEXTS)]], check=True, capture_output=True, timeout=60)
    wav, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = Audio(wav.T, rate).resample(RATE).waveform[0]
    return 0.6 * mono / max(1e-6, float(np.abs(mono).max()))


def background(index: int, noise_only: bool = False) -> np.ndarray:
    """A scene sound without voice: a tone or a quiet noise (only noise with ``noise_only``), varied with ``index``."""
    rng = np.random.default_rng(index)
    t = np.arange(int(RATE * SECONDS)) / RATE
    if noise_only or (index // 2) % 2:  # clips alternate kinds, so each kind gets tones and noise alike
        return (0.05 * rng.standard_normal(t.size)).astype(np.float32)
    return (0.3 * np.sin(2 * np.pi * (220 + 40 * index) * t)).astype(np.float32)


def mix(base: np.ndarray, voice: np.ndarray, offset: float) -> np.ndarray:
    out = base.copy()
    start = int(offset * RATE)
    piece = voice[: out.size - start]
    out[start : start + piece.size] += piece
    return out


@dataclass
class SoundtrackGenerator:
    """Step-1 stand-in: returns the audio registered for each video (see the module docstring)."""

    tracks: dict[str, np.ndarray] = field(default_factory=dict)
    name: str = "soundtrack-stand-in"
    sample_rate: int = RATE
    calls: int = 0

    def generate(self, request: GenerationRequest) -> Audio:
        self.calls += 1
        wave = self.tracks[str(Path(request.video).resolve())]
        return Audio(wave[: int(round(request.duration * RATE))], RATE)


def make_clips(
    folder: Path, kinds: list[str], noise_only: bool = False
) -> tuple[list[Path], dict[Path, str], SoundtrackGenerator]:
    """Write one clip per kind (in order); return the paths, each path's kind and the stand-in generator."""
    folder.mkdir(parents=True, exist_ok=True)
    generator = SoundtrackGenerator()
    videos, made = [], {}
    for index, kind in enumerate(kinds):
        path = folder / f"{index:02d}_{kind}.mp4"
        base = background(index, noise_only)
        if kind == "mute":
            make_video(path, duration=SECONDS, fps=10, size=(96, 64))
        else:
            own = mix(base, speech(folder, index), 0.2) if kind == "onscreen" else base
            make_video(path, duration=SECONDS, fps=10, size=(96, 64), audio=Audio(own, RATE))
            generated = mix(base, speech(folder, index), 0.1 + 0.05 * (index % 4)) if kind == "vo" else own
            generator.tracks[str(path.resolve())] = generated
        videos.append(path)
        made[path] = kind
    return videos, made, generator


def learnable_tiny_reasoner(seed: int = 0):  # noqa: ANN201
    """The tiny real Qwen2.5-Omni thinker, with two groups of its random weights drawn at another scale.

    At the tiny model's default initialisation (std 0.02 at widths 16-32) its
    audio tower maps speech and a tone to the same vector (cosine 0.9999) and its
    output head caps every logit near ±0.6, so no fine-tuning could show an
    effect. The audio tower's matrices are therefore drawn at unit gain
    (std 1/sqrt(fan-in)) and the output head is scaled by 20; the architecture and
    every code path are the real ones.
    """
    import torch

    reasoner = toy.omni_reasoner(seed=seed, max_new_tokens=8)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in reasoner.model.named_parameters():
            if "audio_tower" in name and param.ndim >= 2 and "positional" not in name:
                param.copy_(torch.randn(param.shape, generator=generator) / param[0].numel() ** 0.5)
        reasoner.model.lm_head.weight.mul_(20.0)
    return reasoner
