"""``--residency one`` inside MMAudio: one group of its parts in memory at a time, the same audio.

The staged generator loads CLIP's image tower, Synchformer, CLIP's text tower, then the network,
VAE and vocoder, each when first needed, releasing the group before. Here its parts are the tiny
seeded ones of :mod:`deepsound.testing.tiny` (CLIP read from a file, one tower at a time, through
the published-file loader), tracked with weak references: at every load, no module of another
group may still be alive. The audio must equal, bit for bit, that of the same parts held at once.
In a batch the conditions are stages of their own, so each encoder loads once for all clips, and
a clip's recorded time is its own, not the time it waited for the others.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import time
import weakref
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from media_factory import make_video
from test_residency import all_voice

from deepsound.batch import BatchItem, run_batch
from deepsound.config import GeneratorConfig, PipelineConfig, RunOptions, SeparatorConfig
from deepsound.interfaces import GenerationRequest, VoiceOverVerdict
from deepsound.models.mmaudio.clip import ClipConditioner, tiny_model_config
from deepsound.models.mmaudio.generator import MMAudioGenerator
from deepsound.models.mmaudio.network import MMAudioNetwork
from deepsound.models.mmaudio.parts import GROUPS
from deepsound.pipeline import Pipeline
from deepsound.registry import register, unregister
from deepsound.residency import own_time
from deepsound.testing import tiny as toy
from deepsound.testing.equivalence import fill_seeded

SEED = 0


@pytest.fixture(scope="module")
def clip_files(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("clip")
    torch.save(toy.clip_conditioner(seed=SEED).model.state_dict(), folder / "open_clip_pytorch_model.bin")
    config = folder / "open_clip_config.json"
    config.write_text(json.dumps({"model_cfg": tiny_model_config()}), encoding="utf-8")
    return folder / "open_clip_pytorch_model.bin", config


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    make_video(path, duration=1.2, fps=25, size=(96, 64))
    return path


class Tracked:
    """Loaders of the tiny parts that remember, weakly, every module they made and its group."""

    def __init__(self, clip_files: tuple[Path, Path], spec) -> None:  # noqa: ANN001
        self.alive: weakref.WeakKeyDictionary[torch.nn.Module, str] = weakref.WeakKeyDictionary()
        self.clashes: list[tuple[str, list[str]]] = []
        self.peak_params = 0
        weights, config = clip_files

        def network() -> MMAudioNetwork:
            net = fill_seeded(MMAudioNetwork(spec), seed=SEED)
            with torch.no_grad():
                net.latent_std.abs_().add_(0.5)
            return net

        builders = {
            "clip_image": lambda: ClipConditioner.from_pretrained(weights, config, tower="image"),
            "clip_text": lambda: ClipConditioner.from_pretrained(weights, config, tower="text"),
            "synchformer": lambda: toy.synchformer_encoder(seed=SEED),
            "network": network,
            "decoder": lambda: toy.audio_decoder("16k", seed=SEED),
        }
        self.loaders = {name: self._tracked(name, build) for name, build in builders.items()}

    def _tracked(self, name: str, build):  # noqa: ANN202, ANN001
        def load() -> torch.nn.Module:
            gc.collect()
            others = sorted({group for group in self.alive.values() if group != GROUPS[name]})
            if others:
                self.clashes.append((name, others))
            module = build()
            self.alive[module] = GROUPS[name]
            self.peak_params = max(self.peak_params, self.live_params())
            return module

        return load

    def live_params(self) -> int:
        return sum(p.numel() for m in list(self.alive.keys()) for p in m.parameters())


def staged(tracked: Tracked, spec) -> MMAudioGenerator:  # noqa: ANN001
    return MMAudioGenerator(None, None, None, None, mode="16k", loaders=tracked.loaders, spec=spec)


def test_clip_towers_load_alone_from_the_file_and_encode_as_the_whole(clip_files):
    whole = ClipConditioner.from_pretrained(*clip_files)
    image = ClipConditioner.from_pretrained(*clip_files, tower="image")
    text = ClipConditioner.from_pretrained(*clip_files, tower="text")
    visual = sum(p.numel() for p in whole.model.visual.parameters())
    total = sum(p.numel() for p in whole.parameters())
    assert sum(p.numel() for p in image.parameters()) == visual
    assert sum(p.numel() for p in text.parameters()) == total - visual
    frames = torch.rand(1, 2, 3, 384, 384, generator=torch.Generator().manual_seed(1))
    assert torch.equal(image.encode_image(frames), whole.encode_image(frames))
    assert torch.equal(text.encode_text(["rain on a roof", ""]), whole.encode_text(["rain on a roof", ""]))


def test_staged_holds_one_group_at_a_time_and_makes_the_same_audio(clip_files, video):
    reference = toy.mmaudio_generator(seed=SEED, mode="16k")
    spec = reference.spec
    tracked = Tracked(clip_files, spec)
    gen = staged(tracked, spec)
    request = GenerationRequest(
        video=video, prompt="rain", negative_prompt="voice", duration=1.0, seed=3, num_steps=2
    )
    with torch.inference_mode():
        expected = reference.generate_waveform(request)
        got = gen.generate_waveform(request)
    assert torch.equal(got, expected)
    assert tracked.clashes == []
    assert dict(gen.parts.loads) == dict.fromkeys(GROUPS, 1)
    assert [e for e in gen.parts.events if e[0] == "release"] == [
        ("release", "clip_image"),
        ("release", "synchformer"),
        ("release", "clip_text"),
    ]
    # the largest group alone is ever alive: far below all parts at once
    everything = sum(p.numel() for p in reference.parts._modules["clip_image"].parameters())
    everything += sum(
        p.numel() for n in ("synchformer", "network", "decoder") for p in getattr(reference, n).parameters()
    )
    assert tracked.peak_params < everything
    gen.release()
    gc.collect()
    assert tracked.live_params() == 0  # released means freed: no reference left anywhere


class VoiceOver:
    """Orchestration double: every clip "holds a voice-over", so separation and ``neg`` run."""

    name = "always"

    def judge(self, video, audio) -> VoiceOverVerdict:  # noqa: ANN001
        return VoiceOverVerdict(True, self.name)


@pytest.fixture
def registered(clip_files):
    made: list[MMAudioGenerator] = []
    spec = toy.mmaudio_generator(seed=SEED, mode="16k").spec

    def staged_factory(config, components):  # noqa: ANN001, ANN202
        tracked = Tracked(clip_files, spec)
        made.append(staged(tracked, spec))
        made[-1].tracked = tracked
        return made[-1]

    register("generator", "staged_tiny", staged_factory)
    register(
        "generator", "whole_tiny", lambda config, components: toy.mmaudio_generator(seed=SEED, mode="16k")
    )
    register(
        "separator", "all_voice_tiny", lambda config, components: all_voice(toy.bs_roformer_separator(seed=0))
    )
    register("judge", "always_tiny", lambda config, components: VoiceOver())
    yield made
    unregister("generator", "staged_tiny")
    unregister("generator", "whole_tiny")
    unregister("separator", "all_voice_tiny")
    unregister("judge", "always_tiny")


def batch(residency: str, generator: str, clips: list[Path], out: Path):  # noqa: ANN201
    config = PipelineConfig(
        device="cpu",
        residency=residency,
        judge="always_tiny",
        generator=GeneratorConfig(name=generator),
        separator=SeparatorConfig(name="all_voice_tiny"),
    )
    options = RunOptions(duration=1.0, num_steps=2, mode="s4", postprocess="neg", write_video=False)
    return run_batch(Pipeline(config), [BatchItem(c) for c in clips], out, options)


def test_a_batch_loads_each_part_once_per_stage_and_clips_time_only_themselves(registered, video, tmp_path):
    clips = []
    for index in range(3):
        clips.append(tmp_path / f"clip{index}.mp4")
        clips[-1].write_bytes(video.read_bytes())
    summary = batch("one", "staged_tiny", clips, tmp_path / "one")
    assert [item.status for item in summary.items] == ["done"] * 3, [item.reason for item in summary.items]
    assert [item.fallback for item in summary.items] == ["neg"] * 3
    (gen,) = registered
    # conditions: each encoder once for the batch; network, VAE, vocoder for generate and for neg
    assert dict(gen.parts.loads) == {
        "clip_image": 1,
        "synchformer": 1,
        "clip_text": 1,
        "network": 2,
        "decoder": 2,
    }
    assert gen.tracked.clashes == []
    # a clip's seconds are its own stages': together no more than the batch's wall time
    assert sum(item.seconds for item in summary.items) <= summary.seconds
    for index in range(3):
        trace = json.loads((tmp_path / "one" / f"clip{index}.trace.json").read_text(encoding="utf-8"))
        assert 0 < trace["seconds"] <= summary.items[index].seconds + 1e-3
    # the same audio as every part held at once, clip by clip (samples: a float WAV's header has a time)
    batch("all", "whole_tiny", clips, tmp_path / "all")
    for index in range(3):
        for suffix in (".step1.wav", ".neg.wav"):
            one, _ = sf.read(tmp_path / "one" / f"clip{index}{suffix}", dtype="float32")
            every, _ = sf.read(tmp_path / "all" / f"clip{index}{suffix}", dtype="float32")
            assert np.array_equal(one, every), suffix


def test_own_time_leaves_out_the_pauses():
    def run():  # noqa: ANN202
        time.sleep(0.02)
        yield "a"
        time.sleep(0.02)
        yield "b"
        return "done"

    spent = [0.0]
    stages = own_time(run(), spent)
    assert next(stages) == "a"
    time.sleep(0.3)  # another clip's stage, or a model load
    assert next(stages) == "b"
    time.sleep(0.3)
    with pytest.raises(StopIteration) as done:
        next(stages)
    assert done.value.value == "done"
    assert 0.04 <= spent[0] < 0.3


def test_conditions_asked_ahead_give_the_same_audio_as_asked_at_once(clip_files, video):
    spec = toy.mmaudio_generator(seed=SEED, mode="16k").spec
    request = GenerationRequest(video=video, prompt="", negative_prompt="", duration=1.0, seed=1, num_steps=2)
    at_once = staged(Tracked(clip_files, spec), spec)
    ahead = staged(Tracked(clip_files, spec), spec)
    for what in ("image", "motion", "text"):
        ahead.condition(request, what)
    loads = dict(ahead.parts.loads)
    with torch.inference_mode():
        assert torch.equal(ahead.generate_waveform(request), at_once.generate_waveform(request))
    assert loads == {"clip_image": 1, "synchformer": 1, "clip_text": 1}
    assert dataclasses.asdict(spec) == dataclasses.asdict(ahead.spec)
