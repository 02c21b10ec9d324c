"""FoleyCrafter as step 1: built by name from the registry, its files by name (``--weights``), a video
read from a file, windows, evidence, and the offline message naming every missing file.

The numbers themselves are proven against the official code in ``test_foleycrafter.py``; here the
same tiny official-format files run through the paths a user takes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from media_factory import make_video

from deepsound.config import GeneratorConfig, PipelineConfig
from deepsound.errors import WeightsError
from deepsound.interfaces import Generation, GenerationRequest, Generator
from deepsound.registry import Components, available
from deepsound.testing.foleycrafter_checkpoint import write_tiny_checkpoint

DATA = Path(__file__).parent / "data" / "foleycrafter"


@pytest.fixture(scope="module")
def overrides(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    layout = json.loads((DATA / "tiny_files.json").read_text(encoding="utf-8"))
    configs = json.loads((DATA / "tiny_configs.json").read_text(encoding="utf-8"))
    f = write_tiny_checkpoint(tmp_path_factory.mktemp("fc"), layout, configs, seed=0)
    fc, enc = f["foleycrafter"], f["image_encoder"]
    return {
        "auffusion_full_no_adapter": f["auffusion"],
        "foleycrafter_temporal_adapter": fc / "temporal_adapter.ckpt",
        "foleycrafter_timestamp_detector": fc / "timestamp_detector.pth.tar",
        "foleycrafter_semantic_adapter": fc / "semantic" / "semantic_adapter.bin",
        "foleycrafter_vocoder": fc / "vocoder" / "vocoder.pt",
        "foleycrafter_vocoder_config": fc / "vocoder" / "config.json",
        "ip_adapter_image_encoder": enc / "model.safetensors",
        "ip_adapter_image_encoder_config": enc / "config.json",
    }


def test_registered_generator_makes_16k_audio_cut_to_the_video(
    overrides: dict[str, Path], tmp_path: Path
) -> None:
    """Built by name from the registry with its own settings (a 256-column canvas and 8 frames keep
    this run to seconds; the official sizes are proven in test_foleycrafter.py)."""
    from deepsound.registry import entry

    assert "foleycrafter" in available("generator")
    found = entry("generator", "foleycrafter")
    assert found.rate(found.default_settings()) == 16000 and found.label == "FoleyCrafter"
    assert set(found.files(found.default_settings())) == set(overrides)
    config = PipelineConfig(
        device="cpu",
        generator=GeneratorConfig("foleycrafter", width=256, frames=8),
        weights=overrides,
        offline=True,
    )
    generator = Components(config).generator
    assert isinstance(generator, Generator) and generator.sample_rate == 16000
    assert generator.settings.width == 256 and generator.dtype == torch.float32
    video = make_video(tmp_path / "clip.mp4", duration=1.2, fps=10, size=(64, 48))
    request = GenerationRequest(video=video, prompt="a door slams", duration=1.2, seed=3, num_steps=2)
    made = generator.generate(request)
    assert isinstance(made, Generation)
    assert made.audio.sample_rate == 16000 and made.audio.waveform.shape[-1] == int(1.2 * 16000)
    assert np.isfinite(made.audio.waveform).all() and np.abs(made.audio.waveform).max() <= 1.0
    evidence = made.evidence
    assert evidence["windows"] == [[0.0, 1.2]] and evidence["steps"] == 2
    assert evidence["temporal_scale"] == 0.2 and evidence["semantic_scale"] == 1.0
    assert {"video decode", "detector", "image encoder", "sampling", "vocoder"} <= set(
        evidence["stage_seconds"]
    )
    again = generator.generate(request)  # the same clip again: frames and encoders are not run twice
    assert again.evidence["stage_seconds"]["detector"] == 0.0
    np.testing.assert_array_equal(again.audio.waveform, made.audio.waveform)


def test_offline_without_files_names_every_missing_file(tmp_path: Path) -> None:
    config = PipelineConfig(
        device="cpu", generator=GeneratorConfig("foleycrafter"), weights_dir=tmp_path, offline=True
    )
    components = Components(config)
    assert {e.name for e in components.missing_files(tmp_path)} >= {"foleycrafter_temporal_adapter"}
    with pytest.raises(WeightsError) as caught:
        components.get("generator")
    message = str(caught.value)
    for name in (
        "temporal_adapter.ckpt",
        "timestamp_detector.pth.tar",
        "semantic_adapter.bin",
        "model_index.json",
    ):
        assert name in message
    assert "weights download" in message  # what to do, with every file of the run in one message


def test_a_long_video_is_made_in_windows_joined_to_its_length(
    overrides: dict[str, Path], tmp_path: Path
) -> None:
    """Windows of at most ``window`` seconds, each an official pass over its own stretch of frames."""
    config = PipelineConfig(
        device="cpu",
        generator=GeneratorConfig("foleycrafter", width=256, frames=8, window=1.0, window_slack=0.2),
        weights=overrides,
        offline=True,
    )
    generator = Components(config).generator
    video = make_video(tmp_path / "long.mp4", duration=2.5, fps=10, size=(64, 48))
    made = generator.generate(GenerationRequest(video=video, duration=2.5, seed=1, num_steps=1))
    assert made.audio.waveform.shape[-1] == 40000
    assert [w[1] for w in made.evidence["windows"]] == pytest.approx([2.5 / 3] * 3, abs=1e-3)
    assert len(made.evidence["onset_frames"]) == 3
