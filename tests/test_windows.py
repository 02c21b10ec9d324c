"""Long soundtracks in cross-faded windows."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
from media_factory import make_video

from deepsound.audio import Audio
from deepsound.errors import ConfigError
from deepsound.interfaces import GenerationRequest
from deepsound.steps.generate import generate_windowed, window_starts
from deepsound.testing import tiny as toy


def test_window_starts_cover_the_duration():
    assert window_starts(5.0, 8.0, 1.0) == [0.0]
    assert window_starts(20.0, 8.0, 1.0) == [0.0, 7.0, 12.0]
    starts = window_starts(30.0, 8.0, 2.0)
    assert starts[0] == 0.0 and starts[-1] + 8.0 == pytest.approx(30.0)
    assert all(b - a <= 6.0 + 1e-9 for a, b in zip(starts, starts[1:], strict=False))
    with pytest.raises(ConfigError):
        window_starts(20.0, 8.0, 8.0)


@dataclass
class ConstantPerWindow:
    """Each call returns a constant level equal to its seed, to see exactly where pieces land."""

    name: str = "constant"
    sample_rate: int = 1000
    requests: list[GenerationRequest] = field(default_factory=list)

    def generate(self, request: GenerationRequest) -> Audio:
        self.requests.append(request)
        return Audio(
            np.full((1, int(request.duration * self.sample_rate)), float(request.seed), np.float32), 1000
        )


def test_windows_are_placed_seeded_and_cross_faded():
    gen = ConstantPerWindow()
    made = generate_windowed(
        gen, GenerationRequest(video=None, duration=20.0, seed=1), window=8.0, overlap=1.0
    )
    audio = made.audio
    assert [(w["start"], w["duration"], w["seed"]) for w in made.evidence["windows"]] == [
        (0.0, 8.0, 1),
        (7.0, 8.0, 2),
        (12.0, 8.0, 3),
    ]
    assert audio.num_samples == 20_000
    assert [(r.start, r.duration, r.seed) for r in gen.requests] == [
        (0.0, 8.0, 1),
        (7.0, 8.0, 2),
        (12.0, 8.0, 3),
    ]
    wave = audio.waveform[0]
    assert wave[3000] == 1.0 and wave[10_000] == 2.0 and wave[19_000] == 3.0
    # equal-power fade from window 1 to window 2 over [7 s, 8 s)
    t = np.linspace(0, 1, 1000)
    expected = np.cos(t * np.pi / 2) * 1.0 + np.sin(t * np.pi / 2) * 2.0
    np.testing.assert_allclose(wave[7000:8000], expected, atol=1e-5)
    # the last window starts at 12 s, while window 2 covered up to 15 s: a 3 s fade, half-way at 13.5 s
    half = np.pi / 4
    assert wave[13_500] == pytest.approx(np.cos(half) * 2.0 + np.sin(half) * 3.0, abs=2e-3)


def test_short_requests_are_one_call():
    gen = ConstantPerWindow()
    generate_windowed(gen, GenerationRequest(video=None, duration=5.0, seed=4), window=8.0)
    assert len(gen.requests) == 1 and gen.requests[0].start == 0.0


def test_tiny_mmaudio_reads_each_window_of_the_video(tmp_path):

    video = tmp_path / "long.mp4"
    make_video(video, duration=3.0, fps=25, size=(96, 64))
    gen = toy.mmaudio_generator(seed=0, mode="16k")
    request = GenerationRequest(video=video, duration=3.0, seed=5, num_steps=2)
    made = generate_windowed(gen, request, window=1.5, overlap=0.5)
    audio = made.audio
    # every window's stage timings are kept, and their sum is the step's
    assert len(made.evidence["windows"]) == 3
    assert all(w["stage_seconds"]["sampling"] > 0 for w in made.evidence["windows"])
    total = sum(w["stage_seconds"]["sampling"] for w in made.evidence["windows"])
    assert made.evidence["stage_seconds"]["sampling"] == pytest.approx(total, abs=1e-3)
    assert audio.sample_rate == 16000 and audio.num_samples == 48000
    assert np.isfinite(audio.waveform).all()
    first = gen.generate(GenerationRequest(video=video, duration=1.5, seed=5, num_steps=2)).audio.waveform
    later = gen.generate(
        GenerationRequest(video=video, duration=1.5, seed=5, num_steps=2, start=1.5)
    ).audio.waveform
    assert not np.allclose(first, later)  # the later window sees other frames
