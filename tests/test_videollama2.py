"""VideoLLaMA2 (Qwen2 AV) against the official code.

Goldens in tests/data/videollama2/ were made by tools/goldens/videollama2.py from
lym0302/DeepSound-V1 @ a775b9e6aac51dc755c5e9c5849d9d870a716dee (third_party/VideoLLaMA2,
the audio_visual branch of DAMO-NLP-SG/VideoLLaMA2) running on transformers 4.42.3 (the
reference's pin): the full-size parameter manifest from the official classes on the meta
device; fbank (torchaudio), BEATs and connector outputs at small sizes with fill_seeded
weights; and, on the tiny checkpoint folder our write_tiny_checkpoint(seed=0) writes and
the official classes load, the spliced input embeddings, the logits of one forward and
the greedy ids of mm_infer's generate call, for seeded inputs and for the real clip aa.mp4.
Proven at seeded weights, not at the published ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deepsound.errors import ConfigError, WeightsError
from deepsound.models.kaldi import fbank as kaldi_fbank
from deepsound.models.videollama2 import inputs
from deepsound.models.videollama2.beats import Beats, BeatsConfig, beats_config_from_state
from deepsound.models.videollama2.connector import StcConnectorV35
from deepsound.models.videollama2.model import VideoLlama2, read_config
from deepsound.testing.equivalence import fill_seeded, manifest_diff, relative_l2
from deepsound.testing.videollama2_checkpoint import TINY_BEATS, write_tiny_checkpoint

DATA = Path(__file__).parent / "data" / "videollama2"
_REPO = Path(__file__).resolve().parents[1]
# the real clips sit in ../shared/media beside the checkout (one level further up from a worktree)
MEDIA = next(
    (p for p in (_REPO.parent / "shared" / "media", _REPO.parent.parent / "shared" / "media") if p.is_dir()),
    _REPO.parent / "shared" / "media",
)
CLIP = MEDIA / "aa.mp4"
STEP0 = "Generate high-quality audio from video step-by-step."
STEP2 = (
    "Given a video and its corresponding audio, determine whether the audio contains voice-over? "
    "Options: A. Yes, B. No. Choose A or B."
)


@pytest.fixture(scope="module")
def goldens() -> dict:
    return torch.load(DATA / "tiny.pt", weights_only=False)


@pytest.fixture(scope="module")
def chat(tmp_path_factory):
    from deepsound.models.videollama2.chat import VideoLlamaChat

    folder = write_tiny_checkpoint(tmp_path_factory.mktemp("vl") / "tiny", seed=0)
    return VideoLlamaChat.from_folder(folder, folder / "siglip-tiny", dtype=torch.float32, device="cpu")


def test_full_size_parameters_match_the_official_manifest():
    import transformers

    manifest = json.loads((DATA / "manifest.json").read_text())
    siglip = {k: v for k, v in manifest["siglip"].items() if k != "model_type"}
    with torch.device("meta"):  # shapes only
        model = VideoLlama2(
            {**manifest["config"], "mm_vision_tower": "google/siglip-so400m-patch14-384"},
            transformers.SiglipVisionConfig(**siglip),
        )
    ours = {k: list(v.shape) for k, v in model.llm.named_parameters()}
    assert manifest_diff(ours, manifest["checkpoint"]) == []
    tower = {f"vision_model.{k}": list(v.shape) for k, v in model.vision.state_dict().items()}
    assert manifest_diff(tower, manifest["vision_tower"]) == []
    assert sum(np.prod(s) for s in ours.values()) > 7e9  # the 7B model, not a stand-in


def test_fbank_equals_torchaudio_kaldi():
    g = torch.load(DATA / "modules.pt")
    ours = kaldi_fbank(g["fbank_wave"], num_mel_bins=128, sample_rate=16_000)
    assert ours.shape == g["fbank"].shape
    assert relative_l2(ours, g["fbank"]) <= 1e-6


def test_beats_and_connector_equal_official_at_seeded_weights():
    g = torch.load(DATA / "modules.pt")
    beats = fill_seeded(Beats(BeatsConfig.from_dict(TINY_BEATS)).eval(), 3)
    connector = fill_seeded(StcConnectorV35(16, 32).eval(), 4)
    with torch.no_grad():
        assert relative_l2(beats(g["beats_in"]), g["beats_out"]) <= 1e-4
        out = connector(g["connector_in"])
    assert out.shape == g["connector_out"].shape == (1, 2 * 3 * 3, 32)
    assert relative_l2(out, g["connector_out"]) <= 1e-4


def test_beats_position_buckets_are_reused_only_for_the_same_length():
    """The bucket cache may not leak one length's relative positions into another's attention."""
    g = torch.load(DATA / "modules.pt")
    x = g["beats_in"]
    shorter = x[:, : x.shape[1] - 32]  # two patch columns fewer: another token count
    warm = fill_seeded(Beats(BeatsConfig.from_dict(TINY_BEATS)).eval(), 3)
    with torch.no_grad():
        first, second, again = warm(x), warm(shorter), warm(x)
        fresh = fill_seeded(Beats(BeatsConfig.from_dict(TINY_BEATS)).eval(), 3)(shorter)
    assert second.shape[1] < first.shape[1]
    assert torch.equal(second, fresh)
    assert torch.equal(again, first)


def test_beats_dimensions_are_read_off_the_weights():
    config = BeatsConfig.from_dict(TINY_BEATS)
    state = {f"model.audio_tower.{k}": v for k, v in Beats(config).state_dict().items()}
    assert beats_config_from_state(state, "model.audio_tower.") == config


def test_tiny_checkpoint_splice_logits_and_greedy_ids_equal_official(chat, goldens):
    g, media = goldens["seeded"], goldens["seeded_media"]
    prompt, ids = chat.prompt(STEP2)
    assert prompt == g["prompt"] and ids == g["input_ids"].tolist()
    tokens = chat.model.media_tokens(media["video"].half().float(), media["audio"].half().float())
    embeds = chat.model.embed(ids, [tokens])
    assert relative_l2(embeds[0], g["embeds"]) <= 1e-4
    assert relative_l2(chat.model.logits(embeds)[0, -4:], g["logits"]) <= 1e-4
    reply = chat.answer(STEP2, media["video"].half(), media["audio"].half(), max_new_tokens=len(g["ids"]))
    assert reply.token_ids == g["ids"].tolist()
    assert reply.text == g["text"]


def test_generation_config_end_tokens_stop_greedy_decoding(chat, goldens):
    import copy

    g, media = goldens["seeded"], goldens["seeded_media"]
    saved = chat.generation
    chat.generation = copy.deepcopy(saved)
    chat.generation.eos_token_id = [*saved.eos_token_id, int(g["ids"][2])]  # as if the third id ended answers
    try:
        reply = chat.answer(STEP2, media["video"].half(), media["audio"].half(), max_new_tokens=20)
    finally:
        chat.generation = saved
    assert reply.token_ids == g["ids"][:3].tolist()  # transformers keeps the end token, then stops


@pytest.mark.media
@pytest.mark.skipif(not CLIP.is_file(), reason="real clips not present")
def test_real_clip_inputs_and_answers_equal_official(chat, goldens):
    g = goldens["clip"]
    samples = inputs.decode_audio(CLIP)
    pixels, fbank, given = chat.media(CLIP, samples, with_audio=True)
    assert torch.equal(pixels, g["pixels"].half())
    assert torch.equal(fbank[0, ::8], g["fbank_rows"].half())
    assert given["frames"] == 4
    for step, question, audio in (("step0", STEP0, None), ("step2", STEP2, fbank)):
        reply = chat.answer(question, pixels, audio, max_new_tokens=len(g[step]["ids"]))
        assert reply.token_ids == g[step]["ids"].tolist(), step


def test_frame_indices_and_audio_clips_follow_the_reference():
    assert inputs.frame_indices(301, 4) == [38, 113, 188, 263]
    assert inputs.frame_indices(16, 16) == list(range(16))
    assert inputs.frame_indices(5, 4) == [1, 2, 3, 4]  # halves round up (the reference's +1e-6), not to even
    bounds = inputs.clip_bounds(10.0)
    assert len(bounds) == 8 and float(bounds[1][0]) == 1.0 and float(bounds[-1][1]) == 9.0
    assert all(start == 0 for start, _ in inputs.clip_bounds(1.5))  # a short sound repeats eight times
    fbank = inputs.audio_fbank(np.full(8000, 0.1, dtype=np.float32))
    assert fbank.shape == (1, 2998, 128) and fbank.dtype == torch.float16


def test_in_memory_audio_goes_through_the_same_conversion():
    rate = 44_100
    t = np.arange(rate) / rate
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.1 * np.sin(2 * np.pi * 220 * t)]).astype(
        np.float32
    )
    mono = inputs.resample_waveform(stereo, rate)
    assert abs(mono.size - 16_000) <= 32
    # s16 samples, and the two channels averaged: the 440 Hz tone at 0.15 dominates
    assert np.allclose(mono * 32768, np.round(mono * 32768))
    assert 0.17 < np.abs(mono[2000:-2000]).max() < 0.23


def test_another_model_type_is_one_clear_line(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava"}))
    with pytest.raises(ConfigError, match="'llava' is not supported.*videollama2_qwen2"):
        read_config(tmp_path)
    with pytest.raises(WeightsError, match="no config.json"):
        read_config(tmp_path / "nothing")


def test_a_pickled_checkpoint_with_the_shared_bias_under_another_layer_loads_the_same(
    chat, goldens, tmp_path
):
    import shutil

    from deepsound.models.videollama2.model import load_model, read_folder_state

    source = Path(chat.name)
    folder = tmp_path / "bin"
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns("*.safetensors", "siglip-tiny"))
    state = read_folder_state(source, "test")
    key = "model.audio_tower.encoder.layers.{}.self_attn.relative_attention_bias.weight"
    state[key.format(1)] = state.pop(
        key.format(0)
    )  # a save that kept another layer's copy of the shared table
    torch.save(state, folder / "pytorch_model.bin")
    model = load_model(folder, source / "siglip-tiny")
    media = goldens["seeded_media"]
    tokens = model.media_tokens(media["video"].half().float(), media["audio"].half().float())
    assert (
        relative_l2(
            model.embed(goldens["seeded"]["input_ids"].tolist(), [tokens])[0], goldens["seeded"]["embeds"]
        )
        <= 1e-4
    )
