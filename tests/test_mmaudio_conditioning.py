"""MMAudio's conditioning encoders: CLIP (frames and text) and the Synchformer visual encoder.

How the reference data in ``tests/data/mmaudio_cond/`` was made (with the official MMAudio code, run
locally with random weights; the weights are not stored, they are regenerated here):
``tools/make_goldens.py mmaudio --official <MMAudio checkout> --only cond`` (``--full`` adds the
published-size files), from hkchengrex/MMAudio at commit 974010a026c731054592d8f777218bd9d85a6c24.

* Weights: ``deepsound.testing.equivalence.fill_seeded`` on the official modules, seed 0 for Synchformer and
  seed 1 for CLIP. It fills each parameter from the seed and the CRC32 of its name, so our modules,
  which use the same names, receive identical weights. No module has floating buffers that matter
  (CLIP's causal mask is rebuilt by open_clip, Synchformer has none).
* Inputs: uniform random low-resolution frames (stored as float16, ``frames_lowres``), blown up to the
  model size by repeating every pixel ``upsample`` times along height and width (so the files stay
  small); Synchformer frames lie in [-1, 1], CLIP frames in [0, 1].
* ``synchformer_manifest.json``: names and shapes of the state dict of the official
  ``mmaudio.ext.synchformer.Synchformer()`` (its ``vfeat_extractor`` branch, which is what its
  ``load_state_dict`` keeps from ``synchformer_state_dict.pth``).
* ``clip_vit_h14_378_manifest.json``: names and shapes of ``open_clip.create_model(
  'ViT-H-14-378-quickgelu')``, the layout of DFN5B's ``open_clip_pytorch_model.bin``.
* ``sync_tiny.pt``: the official ``Synchformer`` built with its own constructor, but with the MotionFormer
  yaml patched to width 64, depth 2, 4 heads (everything else, incl. 224 px and 16-frame windows, as
  published); features from the official ``FeaturesUtils.encode_video_with_sync`` on 2 videos x 32
  frames (3 windows each) with ``batch_size=4``.
* ``sync_full.pt``: the same with the published Synchformer architecture, 1 video x 24 frames
  (2 windows), ``batch_size=1``.
* ``clip_tiny.pt``: a small open_clip ``CLIP`` (config stored in the file), saved with its weights in a
  folder as ``open_clip_pytorch_model.bin`` + ``open_clip_config.json`` and loaded back by the official
  creation call ``open_clip.create_model_from_pretrained(..., return_transform=False)`` (``local-dir:``
  instead of ``hf-hub:``), then wrapped as ``FeaturesUtils`` does: ``patch_clip``, its Normalize
  statistics and ``open_clip.get_tokenizer('ViT-H-14-378-quickgelu')``. Image features come from
  ``encode_video_with_clip`` on 2 x 3 frames of 384 px with ``batch_size=4``, text features (and token
  ids) from ``encode_text`` on four prompts, one longer than 77 tokens.
* ``clip_full.pt``: the same with the full ``ViT-H-14-378-quickgelu`` on one frame and two prompts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from deepsound.errors import MediaError, WeightsError
from deepsound.models.mmaudio.clip import ClipConditioner, default_model_config, tiny_model_config
from deepsound.models.mmaudio.synchformer import SynchformerConfig, SynchformerEncoder
from deepsound.testing import tiny as toy
from deepsound.testing.equivalence import fill_seeded, manifest_diff, parameter_manifest, relative_l2

DATA = Path(__file__).parent / "data" / "mmaudio_cond"
TOLERANCE = 1e-4
TINY_SYNC = SynchformerConfig(embed_dim=64, depth=2, num_heads=4)


def _golden(name: str) -> dict:
    return torch.load(DATA / name, weights_only=False)


def _frames(golden: dict) -> torch.Tensor:
    k = golden["upsample"]
    return golden["frames_lowres"].float().repeat_interleave(k, -1).repeat_interleave(k, -2)


def _save_tiny_sync_checkpoint(path: Path) -> None:
    model = fill_seeded(SynchformerEncoder(TINY_SYNC), seed=0)
    state = dict(model.state_dict())
    # the published file also holds the audio branch and the synchrony head; loading must skip them
    state["afeat_extractor.patch_embed.proj.weight"] = torch.zeros(4, 1, 16, 16)
    state["transformer.pos_emb_cfg.pos_emb"] = torch.zeros(1, 3, 8)
    torch.save(state, path)


def _save_tiny_clip(folder: Path) -> tuple[Path, Path]:
    model = fill_seeded(toy.clip_conditioner().model, seed=1)
    weights, config = folder / "open_clip_pytorch_model.bin", folder / "open_clip_config.json"
    torch.save(model.state_dict(), weights)
    config.write_text(json.dumps({"model_cfg": tiny_model_config()}), encoding="utf-8")
    return weights, config


# ----------------------------------------------------------------------------------------------- layouts


def test_synchformer_layout_equals_official_checkpoint_layout():
    with torch.device("meta"):
        ours = SynchformerEncoder()
    official = json.loads((DATA / "synchformer_manifest.json").read_text())
    assert manifest_diff(parameter_manifest(ours.state_dict()), official) == []


def test_clip_layout_equals_open_clip_vit_h14_378():
    with torch.device("meta"):
        ours = ClipConditioner(default_model_config())
    official = json.loads((DATA / "clip_vit_h14_378_manifest.json").read_text())
    assert manifest_diff(parameter_manifest(ours.model.state_dict()), official) == []
    assert sum(v.numel() for v in ours.model.state_dict().values()) > 9.8e8


def test_tiny_configs_are_those_of_the_goldens():
    assert _golden("clip_tiny.pt")["config"] == tiny_model_config()
    cfg = _golden("sync_tiny.pt")["config"]
    assert (cfg["EMBED_DIM"], cfg["DEPTH"], cfg["NUM_HEADS"]) == (64, 2, 4)
    assert (TINY_SYNC.embed_dim, TINY_SYNC.depth, TINY_SYNC.num_heads) == (64, 2, 4)


# ----------------------------------------------------------------------------------------- Synchformer


def test_synchformer_matches_official_features(tmp_path):
    golden = _golden("sync_tiny.pt")
    _save_tiny_sync_checkpoint(tmp_path / "synchformer_state_dict.pth")
    model = SynchformerEncoder.load(tmp_path / "synchformer_state_dict.pth", config=TINY_SYNC)
    features = model.encode(_frames(golden), batch_size=5)  # the official used 4: batching is invisible
    assert features.shape == golden["features"].shape == (2, 24, 64)
    assert relative_l2(features, golden["features"]) <= TOLERANCE


def test_synchformer_windows_are_16_frames_every_8():
    model = toy.synchformer_encoder()
    frames = torch.rand(1, 31, 3, 224, 224) * 2 - 1
    features = model.encode(frames)
    assert features.shape == (1, 16, 64)  # (31 - 16) // 8 + 1 = 2 windows, 8 features each
    with torch.inference_mode():
        second = model(frames[:, 8:24])
    assert relative_l2(features[:, 8:], second) <= 1e-6
    assert model.encode(frames[:, :16]).shape == (1, 8, 64)


def test_synchformer_rejects_short_or_misshaped_video():
    model = toy.synchformer_encoder()
    with pytest.raises(MediaError, match="15 frames"):
        model.encode(torch.zeros(1, 15, 3, 224, 224))
    with pytest.raises(ValueError, match="224"):
        model.encode(torch.zeros(1, 16, 3, 112, 112))


def test_synchformer_load_names_the_file_on_problems(tmp_path):
    missing = tmp_path / "absent.pth"
    with pytest.raises(WeightsError, match="absent.pth"):
        SynchformerEncoder.load(missing)
    tiny = tmp_path / "tiny_sync.pth"
    _save_tiny_sync_checkpoint(tiny)
    with pytest.raises(WeightsError, match=r"tiny_sync\.pth: does not fit.*wrong shape"):
        SynchformerEncoder.load(tiny)  # published architecture, tiny weights
    truncated = tmp_path / "partial.pth"
    state = torch.load(tiny)
    del state["vfeat_extractor.norm.weight"]
    torch.save(state, truncated)
    with pytest.raises(WeightsError, match=r"partial\.pth.*1 missing: vfeat_extractor\.norm\.weight"):
        SynchformerEncoder.load(truncated, config=TINY_SYNC)
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="garbage.pth"):
        SynchformerEncoder.load(garbage)


def test_synchformer_bfloat16_follows_float32():
    model = toy.synchformer_encoder()
    frames = torch.rand(1, 16, 3, 224, 224) * 2 - 1
    reference = model.encode(frames)
    half = model.to(torch.bfloat16).encode(frames)
    assert half.dtype == torch.bfloat16
    assert relative_l2(half.float(), reference) < 3e-2


# ------------------------------------------------------------------------------------------------- CLIP


def test_clip_matches_official_features(tmp_path):
    golden = _golden("clip_tiny.pt")
    weights, config = _save_tiny_clip(tmp_path)
    clip = ClipConditioner.from_pretrained(weights, config)
    assert torch.equal(clip.tokenize(golden["texts"]), golden["tokens"])
    image = clip.encode_image(_frames(golden), batch_size=5)
    assert image.shape == golden["image_features"].shape == (2, 3, 32)
    assert relative_l2(image, golden["image_features"]) <= TOLERANCE
    text = clip.encode_text(golden["texts"], batch_size=3)
    assert text.shape == golden["text_features"].shape == (4, 77, 32)
    assert relative_l2(text, golden["text_features"]) <= TOLERANCE


def test_clip_features_are_unit_vectors_per_frame_and_token():
    clip = toy.clip_conditioner()
    image = clip.encode_image(torch.rand(1, 2, 3, 384, 384))
    text = clip.encode_text(["birds singing"])
    torch.testing.assert_close(image.norm(dim=-1), torch.ones(1, 2))
    torch.testing.assert_close(text.norm(dim=-1), torch.ones(1, 77))


def test_clip_load_names_the_file_on_problems(tmp_path):
    weights, config = _save_tiny_clip(tmp_path)
    with pytest.raises(WeightsError, match="nowhere.bin"):
        ClipConditioner.from_pretrained(tmp_path / "nowhere.bin", config)
    with pytest.raises(WeightsError, match=r"open_clip_pytorch_model\.bin: does not fit"):
        ClipConditioner.from_pretrained(weights)  # tiny weights into the ViT-H architecture
    bad_config = tmp_path / "bad.json"
    bad_config.write_text('{"model_cfg": {"embed_dim": 8}}')
    with pytest.raises(WeightsError, match=r"bad\.json: no open_clip model config"):
        ClipConditioner.from_pretrained(weights, bad_config)
    bad_config.write_text('{"vision_cfg": {"depth": 2}, "text_cfg": {}, "embed_dim": 8}')
    with pytest.raises(WeightsError, match=r"bad\.json: open_clip cannot build"):
        ClipConditioner.from_pretrained(weights, bad_config)


def test_clip_bfloat16_follows_float32():
    clip = toy.clip_conditioner()
    frames = torch.rand(1, 2, 3, 384, 384)
    reference_image, reference_text = clip.encode_image(frames), clip.encode_text(["a cat purring"])
    clip = clip.to(torch.bfloat16)
    image, text = clip.encode_image(frames), clip.encode_text(["a cat purring"])
    assert image.dtype == text.dtype == torch.bfloat16
    assert relative_l2(image.float(), reference_image) < 3e-2
    assert relative_l2(text.float(), reference_text) < 3e-2


# ------------------------------------------------------------------------------------ full size (slow)


@pytest.mark.slow
def test_full_synchformer_matches_official_features(tmp_path):
    golden = _golden("sync_full.pt")
    model = fill_seeded(SynchformerEncoder(), seed=0)
    torch.save(model.state_dict(), tmp_path / "synchformer_state_dict.pth")
    del model
    model = SynchformerEncoder.load(tmp_path / "synchformer_state_dict.pth")
    features = model.encode(_frames(golden), batch_size=2)
    assert features.shape == (1, 16, 768)
    assert relative_l2(features, golden["features"]) <= TOLERANCE


@pytest.mark.slow
def test_full_clip_matches_official_features():
    golden = _golden("clip_full.pt")
    clip = ClipConditioner.from_pretrained()
    fill_seeded(clip.model, seed=1)
    assert relative_l2(clip.encode_image(_frames(golden)), golden["image_features"]) <= TOLERANCE
    assert relative_l2(clip.encode_text(golden["texts"]), golden["text_features"]) <= TOLERANCE


# ----------------------------------------------------------------------------------------------- CUDA


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_encoders_on_cuda_follow_the_goldens(tmp_path, dtype):
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    tolerance = TOLERANCE if dtype == torch.float32 else 3e-2
    golden = _golden("sync_tiny.pt")
    _save_tiny_sync_checkpoint(tmp_path / "sync.pth")
    sync = SynchformerEncoder.load(tmp_path / "sync.pth", config=TINY_SYNC, device="cuda", dtype=dtype)
    features = sync.encode(_frames(golden))
    assert features.device.type == "cuda" and features.dtype == dtype
    assert relative_l2(features.float(), golden["features"]) <= tolerance

    golden = _golden("clip_tiny.pt")
    weights, config = _save_tiny_clip(tmp_path)
    clip = ClipConditioner.from_pretrained(weights, config, device="cuda", dtype=dtype)
    image = clip.encode_image(_frames(golden))
    text = clip.encode_text(golden["texts"])
    assert image.dtype == text.dtype == dtype
    assert relative_l2(image.float(), golden["image_features"]) <= tolerance
    assert relative_l2(text.float(), golden["text_features"]) <= tolerance
