"""Seeded weights and synthetic clips shared by the audio-evaluation goldens and their tests.

Both sides must build *the same* weights and *the same* input files: the golden
script (``tools/goldens/av_benchmark_audio.py``) saves the weights in the official
file formats and runs the official code; the tests rebuild them from the committed
manifests and run ours. Weights depend only on each tensor's name, shape and the seed
(:func:`deepsound.testing.equivalence.seeded_tensor`), with two adjustments that keep
a deep network numerically alive: batch-norm variances are positive and every 1-D
``weight`` (a norm's gain) is centred on 1.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from deepsound.testing.equivalence import seeded_tensor

DATA = Path(__file__).parent / "data" / "eval_audio"
SEED = 1234


def seeded_state(
    manifest: dict[str, list[int]], seed: int = SEED, keep: dict[str, torch.Tensor] | None = None
) -> dict[str, torch.Tensor]:
    """A state dict for ``manifest`` (name -> shape); names in ``keep`` take the given tensors."""
    keep = keep or {}
    state: dict[str, torch.Tensor] = {}
    for name, shape in manifest.items():
        if name in keep:
            state[name] = keep[name].clone()
        elif name.endswith("num_batches_tracked"):
            state[name] = torch.tensor(0, dtype=torch.int64)
        elif name.endswith("running_var"):
            state[name] = seeded_tensor(name, tuple(shape), seed).abs() * 5 + 0.5
        else:
            value = seeded_tensor(name, tuple(shape), seed)
            if len(shape) == 1 and name.endswith(".weight") and "norm" not in name.lower():
                value = value + 1.0
            state[name] = value
    return state


def _write(path: Path, wave: np.ndarray, rate: int) -> Path:
    sf.write(path, wave.T if wave.ndim == 2 else wave, rate, subtype="PCM_16")
    return path


def synthetic_clips(folder: Path) -> list[Path]:
    """The synthetic inputs: stereo 44.1 kHz (10.5 s), mono 16 kHz (10 s), a short 48 kHz file (3.2 s).

    Deterministic formulas (chirps, tones, seeded noise), written as 16-bit WAV, so the
    official loader and ours decode the same integers.
    """
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(SEED)

    def tone_mix(rate: int, seconds: float, base: float) -> np.ndarray:
        t = np.arange(int(rate * seconds)) / rate
        chirp = np.sin(2 * math.pi * (base * t + 400 * t**2))
        pulses = (np.sin(2 * math.pi * 3 * t) > 0.6) * np.sin(2 * math.pi * 2.5 * base * t)
        noise = rng.standard_normal(t.shape) * 0.05
        return 0.3 * chirp + 0.2 * pulses + noise + 0.02  # a small DC offset to remove

    left, right = tone_mix(44100, 10.5, 220), tone_mix(44100, 10.5, 330)
    return [
        _write(folder / "stereo_44k.wav", np.clip(np.stack([left, right]) * 0.8, -1, 1), 44100),
        _write(folder / "mono_16k.wav", np.clip(tone_mix(16000, 10.0, 440), -1, 1), 16000),
        _write(folder / "short_48k.wav", np.clip(tone_mix(48000, 3.2, 150), -1, 1), 48000),
    ]
