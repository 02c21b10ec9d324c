"""FoleyCrafter (step 1's second generator) against the official code, at seeded weights.

How ``tests/data/foleycrafter/`` was made (official code, not in the project):
``tools/make_goldens.py foleycrafter --official <FoleyCrafter checkout>``, from open-mmlab/FoleyCrafter
at commit c2399fa3cb7ecf860df5a873763dd3a1a59b4bc3 with diffusers 0.25.1 and transformers 4.30.2. The
official modules were built small (``tiny_configs.json``); their layouts (``tiny_files.json``) were
written as official-format files (safetensors/diffusers folders, ``temporal_adapter.ckpt`` and
``timestamp_detector.pth.tar`` with ``state_dict``/``module.`` wrappers, ``semantic_adapter.bin``,
``vocoder/vocoder.pt`` with weight norm) by ``deepsound.testing.foleycrafter_checkpoint`` with
values seeded by key name, and loaded back by the official loaders. The tests write the same files
and load them with ours, strictly.

* ``components.pt``: the detector (training-mode BatchNorm, as the official inference runs it) on
  6 random frames, the ControlNet residuals and UNet noise for random latents/text/control map/image
  tokens at t = 601, the onset map for 1.6 … 10.4 s, CLIP pixel values (strided) and the frames'
  averaged image embedding, prompt tokens and text states, the vocoder on a random spectrogram;
* ``e2e_small.pt`` (default run): the official inference on 8 synthetic frames, 1.6 s, prompt
  "rain on a tin roof", seed 42, on a 256-column canvas with 4 steps (the official width 1024 and
  25 steps take minutes here);
* ``e2e_synthetic.pt`` / ``e2e_negative.pt`` / ``e2e_aa.pt`` (``-m slow``): the official canvas and
  25 steps, the last on ``aa.mp4`` read by the official moviepy reader (150 frames);
* ``manifest.json``: every key and shape of the published files at the released configurations.

Measured agreement (float32, CPU): components ≤ 1e-6 relative L2, sampled latents and spectrogram
≈ 1.5e-6, 16-bit waveform off by at most one step (relative L2 ≈ 2e-5); bounds below are 1e-5 for
single passes and 1e-4 for sampled outputs.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from deepsound.errors import WeightsError
from deepsound.interfaces import GenerationRequest
from deepsound.models.foleycrafter.detector import onset_condition
from deepsound.models.foleycrafter.generator import FoleyCrafterGenerator, windows
from deepsound.models.foleycrafter.layout import Files
from deepsound.models.foleycrafter.settings import FoleyCrafterSettings
from deepsound.testing.equivalence import relative_l2
from deepsound.testing.foleycrafter_checkpoint import write_tiny_checkpoint

DATA = Path(__file__).parent / "data" / "foleycrafter"
ONE_PASS, SAMPLED = 1e-5, 1e-4


def _golden(name: str) -> dict:
    return torch.load(DATA / name, weights_only=False)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Files:
    layout = json.loads((DATA / "tiny_files.json").read_text(encoding="utf-8"))
    configs = json.loads((DATA / "tiny_configs.json").read_text(encoding="utf-8"))
    folders = write_tiny_checkpoint(tmp_path_factory.mktemp("foleycrafter"), layout, configs, seed=0)
    return Files.in_folders(folders["auffusion"], folders["foleycrafter"], folders["image_encoder"])


@pytest.fixture(scope="module")
def generator(files: Files) -> FoleyCrafterGenerator:
    return FoleyCrafterGenerator.from_files(files, FoleyCrafterSettings(width=256))


def _synthetic_frames() -> np.ndarray:
    return _golden("e2e_small.pt")["frames"].numpy()


# ------------------------------------------------------------------------------------ single passes
@torch.inference_mode()
def test_detector_controlnet_unet_and_vocoder_equal_the_official(generator: FoleyCrafterGenerator) -> None:
    gold = _golden("components.pt")
    assert relative_l2(generator.detector(gold["detector_input"]), gold["detector_logits"]) < ONE_PASS
    parts = generator.parts
    down, mid = parts.controlnet(
        gold["latents"],
        gold["t"],
        encoder_hidden_states=gold["text"],
        controlnet_cond=gold["cond"],
        conditioning_scale=0.2,
        guess_mode=False,
        return_dict=False,
    )
    assert len(down) == len(gold["down"])
    for ours, theirs in zip(down, gold["down"], strict=True):
        assert relative_l2(ours, theirs) < ONE_PASS
    assert relative_l2(mid, gold["mid"]) < ONE_PASS
    noise = parts.unet(
        gold["latents"],
        gold["t"],
        encoder_hidden_states=gold["text"],
        down_block_additional_residuals=down,
        mid_block_additional_residual=mid,
        added_cond_kwargs={"image_embeds": [gold["image_embeds"]]},
        return_dict=False,
    )[0]
    assert relative_l2(noise, gold["noise"]) < ONE_PASS
    wave = generator.vocoder(gold["vocoder_mel"][None])[0]
    assert relative_l2(wave, gold["vocoder_wave"][0]) < ONE_PASS


@torch.inference_mode()
def test_frames_text_and_image_embedding_equal_the_official(generator: FoleyCrafterGenerator) -> None:
    from deepsound.models.foleycrafter import frames as frame_io
    from deepsound.models.foleycrafter.sampler import encode_text
    from deepsound.models.foleycrafter.semantic import averaged_image_embedding

    gold = _golden("components.pt")
    pixels = frame_io.clip_input(_synthetic_frames())
    assert torch.equal(pixels[:, :, ::8, ::8], gold["pixel_values_strided"])
    assert pixels.double().sum().item() == pytest.approx(gold["pixel_values_sum"].item(), abs=1e-6)
    embedding = averaged_image_embedding(generator.image_encoder, pixels)
    assert relative_l2(embedding, gold["image_embedding"]) < ONE_PASS
    tokens = generator.parts.tokenizer(
        ["rain on a tin roof"], padding="max_length", max_length=77, truncation=True, return_tensors="pt"
    )
    assert torch.equal(tokens.input_ids, gold["prompt_ids"])
    assert relative_l2(encode_text(generator.parts, "rain on a tin roof"), gold["prompt_states"]) < ONE_PASS


@pytest.mark.parametrize("duration", [1.6, 4.37, 10.0, 10.03, 10.4])
def test_onset_map_equals_the_official_for_any_duration(duration: float) -> None:
    gold = _golden("components.pt")
    ours = onset_condition(gold["mapping_probs"], duration)
    assert ours.shape == (1, 1, 256, 1024)
    assert torch.equal(ours[0, 0, 0], gold["mapping"][duration])
    assert torch.equal(ours[0, 0, 0], ours[0, 0, -1])


# ------------------------------------------------------------------------------------ end to end
def _check_end_to_end(generator: FoleyCrafterGenerator, gold: dict, wave: torch.Tensor, record: dict) -> None:
    assert relative_l2(record["probabilities"], gold["probabilities"]) < ONE_PASS
    assert torch.equal(record["condition"][0, 0, 0], gold["condition"])
    assert relative_l2(record["latents"], gold["latents"]) < SAMPLED
    assert relative_l2(record["spectrogram"], gold["spectrogram"]) < SAMPLED
    official = gold["wave_int16"].float() / 32768
    assert wave.shape == official.shape == (int(min(gold["duration"], 10.0) * 16000),)
    assert relative_l2(wave, official) < SAMPLED
    assert (wave * 32768 - gold["wave_int16"].float()).abs().max() <= 2  # int16 truncation of equal floats


def test_small_end_to_end_equals_the_official(generator: FoleyCrafterGenerator) -> None:
    gold = _golden("e2e_small.pt")
    request = GenerationRequest(
        video=None,
        prompt=gold["prompt"],
        negative_prompt=gold["negative_prompt"],
        duration=gold["duration"],
        seed=gold["seed"],
        num_steps=gold["steps"],
    )
    wave, record = generator.generate_from_frames(gold["frames"].numpy(), request)
    _check_end_to_end(generator, gold, wave, record)
    assert set(generator.timings) >= {"detector", "image encoder", "sampling", "vocoder"}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["e2e_synthetic.pt", "e2e_negative.pt"])
def test_official_canvas_end_to_end_equals_the_official(files: Files, name: str) -> None:
    gold = _golden(name)
    generator = FoleyCrafterGenerator.from_files(files)
    request = GenerationRequest(
        video=None,
        prompt=gold["prompt"],
        negative_prompt=gold["negative_prompt"],
        duration=gold["duration"],
        seed=gold["seed"],
        num_steps=gold["steps"],
    )
    wave, record = generator.generate_from_frames(gold["frames"].numpy(), request)
    _check_end_to_end(generator, gold, wave, record)


@pytest.mark.slow
def test_real_clip_end_to_end_equals_the_official(files: Files, request: pytest.FixtureRequest) -> None:
    """aa.mp4 (10.03 s: the official squeezes the onset map and cuts the audio at 10 s) from the file."""
    media = (
        Path(os.environ["DEEPSOUND_MEDIA"])
        if "DEEPSOUND_MEDIA" in os.environ
        else request.getfixturevalue("media_dir")
    )
    gold = _golden("e2e_aa.pt")
    from deepsound.models.foleycrafter import frames as frame_io

    frames = frame_io.read_frames(media / gold["video"], 150)
    means = torch.from_numpy(frames.reshape(150, -1).mean(axis=1))
    assert torch.allclose(means, gold["frame_means"], atol=1e-9)  # the official reader's frames
    generator = FoleyCrafterGenerator.from_files(files)
    run = GenerationRequest(video=None, prompt="", negative_prompt="", duration=gold["duration"], seed=42)
    wave, record = generator.generate_from_frames(frames, run)
    _check_end_to_end(generator, gold, wave, record)


# ------------------------------------------------------------------------------------ layout and loading
def test_every_published_file_fits_our_modules_strictly() -> None:
    """Our modules at the released configurations take every key of every published file (the
    manifest was made from the official modules), after the written rules and nothing else."""
    from deepsound.models.foleycrafter import layout as L
    from deepsound.models.foleycrafter.semantic import expected_keys
    from deepsound.models.foleycrafter.vocoder import HifiGanVocoder, VocoderConfig, fold_weight_norm
    from deepsound.weights.loading import LoadRules, apply_rules, describe_mismatch

    manifest = json.loads((DATA / "manifest.json").read_text(encoding="utf-8"))
    cfg, published = manifest["configs"], manifest["files"]

    def fits(module: torch.nn.Module, file: str, rules: LoadRules) -> None:
        state = {k: torch.empty(shape, device="meta") for k, shape in published[file].items()}
        problem = describe_mismatch(module.state_dict(), apply_rules(state, rules))
        assert not problem, f"{file}: {problem}"

    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    from deepsound.models.foleycrafter.detector import TimestampDetector

    with torch.device("meta"):
        unet = UNet2DConditionModel(**cfg["unet"])
        fits(unet, "auffusion/unet/diffusion_pytorch_model.safetensors", L.DIFFUSERS_RULES)
        fits(L.controlnet_for(unet), "foleycrafter/temporal_adapter.ckpt", L.TRAINING_WRAPPER_RULES)
        fits(AutoencoderKL(**cfg["vae"]), "auffusion/vae/diffusion_pytorch_model.safetensors", L.VAE_RULES)
        text = CLIPTextModel(CLIPTextConfig(**cfg["text"]))
        prefix = (
            () if any(k.startswith("text_model.") for k in text.state_dict()) else ((r"^text_model\.", ""),)
        )
        fits(
            text, "auffusion/text_encoder/pytorch_model.bin", LoadRules(rename=prefix, drop=L.CLIP_RULES.drop)
        )
        vision = CLIPVisionModelWithProjection(CLIPVisionConfig(**cfg["vision"]))
        fits(vision, "image_encoder/model.safetensors", L.CLIP_RULES)
        fits(TimestampDetector(), "foleycrafter/timestamp_detector.pth.tar", L.TRAINING_WRAPPER_RULES)
        vocoder = HifiGanVocoder(VocoderConfig.from_dict(cfg["vocoder"]))
        fits(vocoder, "foleycrafter/vocoder/vocoder.pt", LoadRules(transform=fold_weight_norm))
        semantic = expected_keys(unet, cfg["vision"]["projection_dim"])
    assert {k: list(v) for k, v in semantic.items()} == published[
        "foleycrafter/semantic/semantic_adapter.bin"
    ]


def test_a_file_that_does_not_fit_fails_in_one_line(files: Files, tmp_path: Path) -> None:
    from deepsound.models.foleycrafter import layout as L

    state = torch.load(files.detector, weights_only=True)
    state["state_dict"]["module.fc.9.weight"] = torch.zeros(1)
    bad = tmp_path / "timestamp_detector.pth.tar"
    torch.save(state, bad)
    with pytest.raises(
        WeightsError, match=r"does not fit the timestamp detector \(1 unexpected: fc\.9\.weight"
    ):
        L.load_detector(bad)
    tables = L.read_semantic_adapter(files.semantic_adapter)
    tables["ip_adapter"].pop("3.to_v_ip.weight")
    torch.save(tables, tmp_path / "semantic_adapter.bin")
    unet = L.load_unet(files.auffusion)
    from deepsound.models.foleycrafter.semantic import install_semantic_adapter

    with pytest.raises(WeightsError, match=r"1 missing: ip_adapter\.3\.to_v_ip\.weight"):
        install_semantic_adapter(unet, L.read_semantic_adapter(tmp_path / "semantic_adapter.bin"), 1.0, "x")


def test_long_videos_are_made_in_equal_windows_and_short_ones_in_one_official_pass() -> None:
    s = FoleyCrafterSettings()
    assert windows(4.0, s) == [(0.0, 4.0)]
    assert windows(10.03, s) == [(0.0, 10.03)]  # within the slack: the official single pass
    assert windows(25.0, s) == pytest.approx([(0.0, 25 / 3), (25 / 3, 25 / 3), (50 / 3, 25 / 3)])
    assert all(length <= s.window for _, length in windows(61.0, s))


def test_half_precision_stays_near_the_float32_result(files: Files) -> None:
    """bfloat16 (a GPU's memory saver) on the same inputs: close to the official float32 numbers
    (measured 2.6e-2 relative L2 on the latents, 2.0e-2 on the spectrogram), audio in float32."""
    gold = _golden("e2e_small.pt")
    generator = FoleyCrafterGenerator.from_files(files, FoleyCrafterSettings(width=256), dtype="bfloat16")
    assert (
        generator.parts.unet.dtype == torch.bfloat16
        and generator.vocoder.conv_pre.weight.dtype == torch.float32
    )
    request = GenerationRequest(
        video=None,
        prompt=gold["prompt"],
        duration=gold["duration"],
        seed=gold["seed"],
        num_steps=gold["steps"],
    )
    wave, record = generator.generate_from_frames(gold["frames"].numpy(), request)
    assert wave.dtype == torch.float32 and torch.isfinite(wave).all()
    assert relative_l2(record["latents"], gold["latents"]) < 0.1
    assert relative_l2(record["spectrogram"], gold["spectrogram"]) < 0.1
