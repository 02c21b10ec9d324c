"""MMAudio generation end to end (step 1) against the official ``generate``, and the generator's behaviour.

How ``tests/data/mmaudio/generation_tiny_{16k,44k}.pt`` were made (official code, not in the project):
``tools/make_goldens.py mmaudio --official <MMAudio checkout> --only generation``, from
hkchengrex/MMAudio at commit 974010a026c731054592d8f777218bd9d85a6c24. Every part of the official
pipeline was built small and filled with
``deepsound.testing.equivalence.fill_seeded(module, seed=5)``:

* CLIP: an ``open_clip.model.CLIP`` with the tiny config of ``ClipConditioner.tiny`` (embed 32, vision
  width 64 / 2 layers / patch 14 on 384 px, text width 32 / 2 layers), patched by the official
  ``features_utils.patch_clip``, with the official normalisation and the ``ViT-H-14-378-quickgelu``
  tokenizer, inside an official ``FeaturesUtils(enable_conditions=False)``;
* Synchformer: the official ``Synchformer`` with its MotionFormer config patched to embed 64, depth 2,
  4 heads;
* decoders: the official ``VAE(data_dim=80|128, embed_dim=20|40, hidden_dim=8)`` and the official
  BigVGAN (16 kHz ``BigVGANVocoder`` with the shipped yaml) or BigVGAN-v2 (44.1 kHz config of
  ``nvidia/bigvgan_v2_44khz_128band_512x``), both with ``upsample_initial_channel=128``, weight norm
  removed after filling as the official loader does; the file stores their parameter names/shapes (so
  the test regenerates the same seeded values) and their buffers' values;
* network: the official ``MMAudio`` (hidden 64, 2 heads, depth 3 / 1 fused, clip/text 32, sync 64;
  v1 at 16 kHz, ``v2=True`` at 44.1 kHz) filled with seed 5, then ``latent_std.abs_().add_(0.5)``.

Then the official ``eval_utils.generate`` ran (4 Euler steps, cfg 4.5, ``torch.Generator('cpu')``
seeded 42, ``negative_text=[negative]`` as the demo passes it) after ``net.update_seq_lengths`` for the
duration, for a 1.0 s video, 0.8 s of text only and a 0.7 s image (``image_input=True``). Frames are
random low-resolution pictures (stored in half precision) upsampled 8x by repetition. Hooks recorded
the latents going into the VAE, its mel output and the vocoder's pre-activation output (the waveform of
random vocoders is mostly clipped, so the pre-activation is the meaningful comparison).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
import torch

from deepsound.audio import Audio
from deepsound.errors import ConfigError, MediaError, WeightsError
from deepsound.interfaces import GenerationRequest, Generator
from deepsound.models.mmaudio.generator import MMAudioGenerator
from deepsound.models.mmaudio.network import MMAudioNetwork
from deepsound.models.mmaudio.vae import AudioDecoder, vae_from_state
from deepsound.models.mmaudio.variants import sequence_config, tiny_spec
from deepsound.models.mmaudio.vocoder import bigvgan_from_state
from deepsound.testing import tiny as toy
from deepsound.testing.equivalence import fill_seeded, relative_l2, seeded_tensor

DATA = Path(__file__).parent / "data" / "mmaudio"


def _golden(mode: str) -> dict:
    return torch.load(DATA / f"generation_tiny_{mode}.pt", weights_only=False)


def _seeded_state(params: dict, buffers: dict, seed: int) -> dict[str, torch.Tensor]:
    state = {name: seeded_tensor(name, tuple(shape), seed) for name, shape in params.items()}
    state.update(buffers)
    return state


def _official_twin(mode: str, golden: dict) -> MMAudioGenerator:
    """Our tiny generator carrying the same seeded weights as the official parts of the golden."""
    seed = golden["seed"]
    clip = toy.clip_conditioner()
    fill_seeded(clip.model, seed=seed)
    sync = fill_seeded(toy.synchformer_encoder(), seed=seed)
    shapes = toy.audio_decoder(mode)
    vae = vae_from_state(
        _seeded_state(golden["vae_params"], golden["vae_buffers"], seed), shapes.vae.cfg, "golden"
    )
    vocoder = bigvgan_from_state(
        _seeded_state(golden["vocoder_params"], golden["vocoder_buffers"], seed), shapes.vocoder.cfg, "golden"
    )
    spec = dataclasses.replace(tiny_spec(mode, v2=golden["v2"]), clip_dim=32, text_dim=32, sync_dim=64)
    net = fill_seeded(MMAudioNetwork(spec), seed=seed)
    with torch.no_grad():
        net.latent_std.abs_().add_(0.5)
    return MMAudioGenerator(net, clip, sync, AudioDecoder(mode, vae, vocoder), mode=mode)


def _frames(case: dict) -> tuple[torch.Tensor, torch.Tensor]:
    up = case["upsample"]

    def grow(x: torch.Tensor) -> torch.Tensor:
        return x.float().repeat_interleave(up, -1).repeat_interleave(up, -2)

    return grow(case["clip_lowres"]), grow(case["sync_lowres"])


@pytest.mark.parametrize("mode", ["16k", "44k"])
@pytest.mark.parametrize("case_name", ["video", "text", "image"])
def test_generation_matches_official(mode: str, case_name: str) -> None:
    golden = _golden(mode)
    case = golden["cases"][case_name]
    gen = _official_twin(mode, golden)
    request = GenerationRequest(
        video=None,
        prompt=case["prompt"],
        negative_prompt=case["negative_prompt"],
        duration=case["duration"],
        seed=case["seed"],
        num_steps=case["num_steps"],
        cfg_strength=case["cfg_strength"],
    )
    captured: dict[str, torch.Tensor] = {}
    hook = gen.decoder.vocoder.conv_post.register_forward_hook(lambda m, i, o: captured.setdefault("pre", o))
    decode = gen.decoder.decode

    def recording_decode(z: torch.Tensor) -> torch.Tensor:
        captured["latents"] = z.clone()
        captured["mel"] = decode(z)
        return captured["mel"]

    gen.decoder.decode = recording_decode  # type: ignore[method-assign]
    clip_frames, sync_frames = _frames(case)
    if case["kind"] == "text":
        wave = gen.generate_from_frames(request, None, None)
    else:
        wave = gen.generate_from_frames(
            request, clip_frames, sync_frames, image_input=case["kind"] == "image"
        )
    hook.remove()
    assert relative_l2(captured["latents"], case["latents"]) <= 1e-4
    assert relative_l2(captured["mel"], case["mel"]) <= 1e-4
    assert relative_l2(captured["pre"].squeeze(1), case["pre_final"]) <= 1e-3
    assert relative_l2(wave, case["audio"]) <= 1e-3


# ---------------------------------------------------------------- behaviour through files


@pytest.fixture(scope="module")
def tiny16k() -> MMAudioGenerator:
    return toy.mmaudio_generator(seed=0, mode="16k")


@pytest.fixture(scope="module")
def clip_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from media_factory import make_video

    return make_video(tmp_path_factory.mktemp("v") / "clip.mp4", duration=1.2, fps=25, size=(160, 120))


def _request(video: Path | None, **kw) -> GenerationRequest:
    return GenerationRequest(video=video, **{"duration": 1.0, "num_steps": 2, **kw})


def test_tiny_generator_is_a_generator(tiny16k: MMAudioGenerator) -> None:
    assert isinstance(tiny16k, Generator)
    assert tiny16k.name == "mmaudio" and tiny16k.sample_rate == 16000


def test_video_generation_through_the_file(tiny16k: MMAudioGenerator, clip_path: Path) -> None:
    made = tiny16k.generate(_request(clip_path, prompt="rain"))
    audio = made.audio
    assert isinstance(audio, Audio) and audio.sample_rate == 16000
    # a whole number of latents (32 for 1 s at 16 kHz), like the official output
    assert audio.waveform.shape == (1, 32 * 512)
    assert np.isfinite(audio.waveform).all() and np.abs(audio.waveform).max() > 0
    stages = made.evidence["stage_seconds"]
    assert stages["video decode"] > 0 and stages["synchformer"] > 0


def test_regeneration_reuses_the_video_features(
    tiny16k: MMAudioGenerator, clip_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = tiny16k.generate(_request(clip_path, prompt="rain", seed=3)).audio
    calls = {"image": 0, "sync": 0}
    encode_image, encode_sync = tiny16k.clip.encode_image, tiny16k.synchformer.encode

    def count(kind, fn):
        def wrapped(*a, **k):
            calls[kind] += 1
            return fn(*a, **k)

        return wrapped

    monkeypatch.setattr(tiny16k.clip, "encode_image", count("image", encode_image))
    monkeypatch.setattr(tiny16k.synchformer, "encode", count("sync", encode_sync))
    made = tiny16k.generate(_request(clip_path, prompt="rain", seed=3))
    again = made.audio
    other = tiny16k.generate(_request(clip_path, prompt="rain", seed=3, negative_prompt="human voice")).audio
    assert calls == {"image": 0, "sync": 0}
    assert made.evidence["stage_seconds"]["video decode"] == 0.0
    np.testing.assert_array_equal(first.waveform, again.waveform)  # same seed -> same audio
    assert not np.array_equal(first.waveform, other.waveform)  # the negative prompt matters
    tiny16k.generate(_request(clip_path, prompt="rain", duration=0.9))  # another window: encoded anew
    assert calls == {"image": 1, "sync": 1}


def test_short_video_shortens_the_audio(tiny16k: MMAudioGenerator, clip_path: Path) -> None:
    from deepsound.media import decode_video

    audio = tiny16k.generate(_request(clip_path, duration=5.0)).audio
    effective = decode_video(clip_path, 5.0).duration
    assert 1.0 < effective < 1.25
    assert audio.waveform.shape == (1, sequence_config("16k", effective).num_audio_samples)


def test_too_short_is_a_config_error(tiny16k: MMAudioGenerator) -> None:
    with pytest.raises(ConfigError, match="at least 0.64 s"):
        tiny16k.generate(_request(None, duration=0.5))


def test_text_only_and_seed(tiny16k: MMAudioGenerator) -> None:
    a = tiny16k.generate(_request(None, prompt="a dog barks", duration=0.8, seed=1)).audio
    b = tiny16k.generate(_request(None, prompt="a dog barks", duration=0.8, seed=2)).audio
    assert a.waveform.shape == (1, 25 * 512)
    assert not np.array_equal(a.waveform, b.waveform)


def test_image_input(tiny16k: MMAudioGenerator, tmp_path: Path) -> None:
    from PIL import Image

    picture = tmp_path / "still.png"
    Image.fromarray((np.random.default_rng(0).random((50, 70, 4)) * 255).astype(np.uint8)).save(picture)
    made = tiny16k.generate(_request(picture, duration=0.7))
    assert made.audio.waveform.shape == (1, 22 * 512)
    assert made.evidence["stage_seconds"]["synchformer"] == 0.0


def test_media_errors_name_the_file(tiny16k: MMAudioGenerator, tmp_path: Path) -> None:
    with pytest.raises(MediaError, match="nothing.mp4"):
        tiny16k.generate(_request(tmp_path / "nothing.mp4"))
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a picture")
    with pytest.raises(MediaError, match="broken.png"):
        tiny16k.generate(_request(broken))


def test_bf16_generation_runs_and_tracks_fp32() -> None:
    fp32 = toy.mmaudio_generator(seed=0, mode="16k")
    bf16 = toy.mmaudio_generator(seed=0, mode="16k", dtype=torch.bfloat16)
    request = _request(None, prompt="wind", duration=0.7, num_steps=2)
    with torch.inference_mode():
        a = fp32.generate_waveform(request)
        b = bf16.generate_waveform(request)
    assert b.dtype == torch.float32 and b.shape == a.shape and torch.isfinite(b).all()


def test_from_config_resolves_and_reports_bad_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """from_config loads the network file named by the registry; a file that does not fit is named."""
    import deepsound.weights.overrides as overrides
    from deepsound.config import GeneratorConfig, PipelineConfig
    from deepsound.registry import Components

    bad = tmp_path / "mmaudio_small_16k.pth"
    torch.save({"latent_mean": torch.zeros(1, 1, 20)}, bad)
    resolved: list[str] = []

    def fake_resolve(name, **kw):
        resolved.append(name)
        return bad

    monkeypatch.setattr(overrides, "resolve", fake_resolve)
    with pytest.raises(WeightsError, match="mmaudio_small_16k.pth: does not fit MMAudio network"):
        config = PipelineConfig(
            generator=GeneratorConfig(variant="small_16k"), device="cpu", weights_dir=tmp_path
        )
        _ = Components(config).generator
    assert resolved == ["mmaudio_small_16k"]
