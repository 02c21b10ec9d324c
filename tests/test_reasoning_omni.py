"""The transformers backend: a real Qwen2.5-Omni thinker (tiny random configuration) on decoded media.

The model class, processor, feature extractor, image/video processors and
chat-template path are transformers' own; only the widths are tiny and the
tokenizer is a byte-level vocabulary built in-process. Frames are decoded from
clips written with PyAV (``media_factory``), audio is a real waveform, so the
shapes, dtypes, token layout (video and audio interleaved when the audio is the
video's soundtrack) and prompts go through the same code as the 7B model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from media_factory import make_video, read_frame_index, tone

from deepsound.config import MllmConfig, PipelineConfig
from deepsound.errors import ConfigError, MediaError, WeightsError
from deepsound.models.qwen_omni.frames import sample_frames
from deepsound.models.qwen_omni.reasoner import SAMPLE_RATE, OmniReasoner
from deepsound.registry import Components
from deepsound.steps import prompts
from deepsound.testing import tiny as toy


@pytest.fixture(scope="module")
def reasoner() -> OmniReasoner:
    return toy.omni_reasoner(seed=0, max_new_tokens=6)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("omni")
    return make_video(folder / "clip.mp4", duration=5.0, fps=10, size=(160, 96), audio=tone(5.0, 44100))


def _ids(reasoner: OmniReasoner, token: str) -> int:
    return reasoner.processor.tokenizer.convert_tokens_to_ids(token)


def test_step2_prompt_holds_the_question_and_interleaves_frames_with_the_given_audio(
    reasoner: OmniReasoner, clip: Path
) -> None:
    audio = tone(3.0, 44100, frequency=300.0, channels=2)
    batch, text, given = reasoner.prepare(
        prompts.VOICE_OVER_QUESTION, video=clip, audio=audio, system=prompts.VOICE_OVER_SYSTEM_PROMPT
    )
    assert prompts.VOICE_OVER_QUESTION in text and prompts.VOICE_OVER_SYSTEM_PROMPT in text
    assert text.endswith("<|im_start|>assistant\n")
    # frames are taken over the audio's 3 s, at 2 fps
    assert (
        given["frames"] == 6 and given["audio_seconds"] == 3.0 and given["audio"] == "soundtrack of the video"
    )
    ids = batch["input_ids"][0].tolist()
    video_id, audio_id = _ids(reasoner, "<|VIDEO|>"), _ids(reasoner, "<|AUDIO|>")
    block = ids[ids.index(_ids(reasoner, "<|audio_bos|>")) + 1 : ids.index(_ids(reasoner, "<|audio_eos|>"))]
    assert set(block) == {video_id, audio_id}
    # 3 s make two 2-second chunks: video, audio, video, audio
    runs = [block[0]] + [b for a, b in zip(block, block[1:], strict=False) if a != b]
    assert runs == [video_id, audio_id, video_id, audio_id]
    # one audio token per 40 ms of the 16 kHz waveform; video tokens = grid / merge^2
    assert block.count(audio_id) == 75
    grid = batch["video_grid_thw"][0]
    assert block.count(video_id) == int(grid.prod()) // 4 and int(grid[0]) == 3
    assert batch["pixel_values_videos"].dtype == torch.float32
    assert batch["input_features"].shape[:2] == (1, 128)
    assert int(batch["feature_attention_mask"].sum()) == 3 * SAMPLE_RATE // 160


def test_step0_sees_the_video_alone(reasoner: OmniReasoner, clip: Path) -> None:
    batch, text, given = reasoner.prepare(
        prompts.PLAN_QUESTION, video=clip, system=prompts.PLAN_SYSTEM_PROMPT
    )
    ids = batch["input_ids"][0].tolist()
    assert _ids(reasoner, "<|AUDIO|>") not in ids and "input_features" not in batch
    assert ids.count(_ids(reasoner, "<|VIDEO|>")) > 0
    # the tiny reasoner sees at most 8 frames: spread over the 5 s instead of 2 per second
    assert given["frames"] == 8 and given["seconds"] == pytest.approx(5.0) and given["fps"] == 1.6
    assert prompts.PLAN_QUESTION in text


def test_audio_alone_when_there_is_no_video(reasoner: OmniReasoner) -> None:
    batch, _, given = reasoner.prepare(prompts.SILENCE_QUESTION, audio=tone(1.0, 16000))
    ids = batch["input_ids"][0].tolist()
    assert ids.count(_ids(reasoner, "<|AUDIO|>")) == 25 and "pixel_values_videos" not in batch
    assert given["audio"] == "alone"


def test_ask_is_greedy_budgeted_and_recorded(reasoner: OmniReasoner, clip: Path) -> None:
    before = len(reasoner.calls)
    audio = tone(2.0, 16000)
    first = reasoner.ask(prompts.VOICE_OVER_QUESTION, video=clip, audio=audio, step="step2")
    second = reasoner.ask(prompts.VOICE_OVER_QUESTION, video=clip, audio=audio, step="step2")
    assert first.text == second.text
    assert len(reasoner.calls) == before + 2 and reasoner.calls[-1] is second.record
    record = first.record
    assert record["prompt"] == prompts.VOICE_OVER_QUESTION and record["step"] == "step2"
    assert record["answer"] == first.text and record["model"] == reasoner.model_id
    assert 1 <= record["tokens_out"] <= 6 and record["tokens_in"] > 100 and record["seconds"] >= 0
    json.dumps(record)  # goes into the trace as it is


def test_bfloat16_weights_get_bfloat16_pixels_and_features(clip: Path) -> None:
    small = toy.omni_reasoner(seed=1, max_new_tokens=2, dtype="bfloat16")
    batch, _, _ = small.prepare("?", video=clip, audio=tone(1.0, 16000))
    assert batch["pixel_values_videos"].dtype == torch.bfloat16
    assert batch["input_features"].dtype == torch.bfloat16
    assert small.ask("?", video=clip, audio=tone(1.0, 16000)).record["tokens_out"] >= 1


def test_exported_checkpoint_has_the_published_layout_and_loads_back(
    reasoner: OmniReasoner, clip: Path, tmp_path: Path
) -> None:
    from safetensors import safe_open

    folder = reasoner.export_checkpoint(tmp_path / "omni")
    with safe_open(str(folder / "model.safetensors"), "pt") as f:
        names = list(f.keys())
    assert "thinker.model.embed_tokens.weight" in names and "thinker.lm_head.weight" in names
    assert any(n.startswith("thinker.audio_tower.") for n in names)
    assert any(n.startswith("thinker.visual.") for n in names)
    assert all(n.startswith("thinker.") for n in names)
    assert json.loads((folder / "config.json").read_text())["model_type"] == "qwen2_5_omni"

    config = PipelineConfig(mllm=MllmConfig(model=str(folder), max_new_tokens=6), device="cpu", offline=True)
    loaded = Components(config).mllm
    loaded.max_frames, loaded.min_pixels, loaded.max_pixels = (
        reasoner.max_frames,
        reasoner.min_pixels,
        reasoner.max_pixels,
    )
    assert loaded.max_new_tokens == 6 and loaded.dtype == torch.float32
    theirs = loaded.model.state_dict()
    for name, tensor in reasoner.model.state_dict().items():
        assert torch.equal(theirs[name], tensor), name
    audio = tone(2.0, 16000)
    expected = reasoner.ask(prompts.VOICE_OVER_QUESTION, video=clip, audio=audio)
    assert loaded.ask(prompts.VOICE_OVER_QUESTION, video=clip, audio=audio).text == expected.text


def test_missing_weights_offline_is_one_weights_error_line() -> None:
    with pytest.raises(WeightsError) as info:
        OmniReasoner.load("Qwen/Qwen2.5-Omni-7B", offline=True)
    message = str(info.value)
    assert "\n" not in message and "Qwen/Qwen2.5-Omni-7B" in message and "--mllm-model" in message


def test_a_file_is_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "weights.bin"
    path.write_bytes(b"x")
    with pytest.raises(WeightsError, match="must be a folder"):
        OmniReasoner.load(path, offline=True)


def test_a_model_that_is_not_an_omni_model_is_refused(tmp_path: Path) -> None:
    from transformers import GPT2Config

    GPT2Config(n_layer=1, n_embd=8, n_head=2).save_pretrained(tmp_path)
    with pytest.raises(ConfigError, match="gpt2"):
        OmniReasoner.load(tmp_path, offline=True)


def test_frames_follow_time_keep_aspect_and_come_in_pairs(tmp_path: Path) -> None:
    path = make_video(tmp_path / "v.mp4", duration=2.5, fps=10, size=(200, 100))
    frames = sample_frames(path, fps=2.0, max_pixels=10**6)
    assert frames.frames.shape == (6, 100, 200, 3) and frames.frames.dtype == np.uint8
    # 5 frames at 0, .5, 1, 1.5, 2 s, then the last repeated to make pairs
    assert [read_frame_index(f) for f in frames.frames] == [0, 5, 10, 15, 20, 20]
    capped = sample_frames(path, fps=2.0, max_frames=2, max_pixels=50 * 100)
    assert capped.frames.shape == (2, 50, 100, 3) and capped.fps == pytest.approx(0.8)
    window = sample_frames(path, fps=2.0, duration=1.0, max_pixels=10**6)
    assert [read_frame_index(f) for f in window.frames] == [0, 5]


def test_turned_phone_clips_are_seen_upright(tmp_path: Path) -> None:
    path = make_video(tmp_path / "turned.mp4", duration=1.0, fps=10, size=(96, 160), rotation=90)
    frames = sample_frames(path, fps=2.0, max_pixels=10**6)
    assert frames.frames.shape[1:3] == (160, 96)
    assert [read_frame_index(f) for f in frames.frames] == [0, 5]


def test_unreadable_videos_are_media_errors(tmp_path: Path) -> None:
    with pytest.raises(MediaError):
        sample_frames(tmp_path / "missing.mp4")
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(MediaError):
        sample_frames(bad)


def test_qwen3_omni_goes_through_the_same_code_path(clip: Path) -> None:
    """Qwen3-Omni (MoE thinker, 16-pixel patches, its own processor) is driven by the same ``ask``."""
    qwen3 = toy.omni_reasoner(seed=0, max_new_tokens=3, family="qwen3_omni_moe")
    assert type(qwen3.model).__name__ == "Qwen3OmniMoeThinkerForConditionalGeneration"
    batch, _, given = qwen3.prepare(prompts.VOICE_OVER_QUESTION, video=clip, audio=tone(3.0, 16000))
    ids = batch["input_ids"][0].tolist()
    assert ids.count(_ids(qwen3, "<|AUDIO|>")) > 0 and ids.count(_ids(qwen3, "<|VIDEO|>")) > 0
    assert given["audio"] == "soundtrack of the video"
    answer = qwen3.ask(prompts.VOICE_OVER_QUESTION, video=clip, audio=tone(3.0, 16000))
    assert 1 <= answer.record["tokens_out"] <= 3


@pytest.mark.gpu
def test_cuda_loads_in_bfloat16_and_answers(clip: Path, tmp_path: Path) -> None:
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    folder = toy.omni_reasoner(seed=0).export_checkpoint(tmp_path / "omni")
    config = PipelineConfig(mllm=MllmConfig(model=str(folder), max_new_tokens=4), device="cuda", offline=True)
    reasoner = Components(config).mllm
    reasoner.max_frames, reasoner.min_pixels, reasoner.max_pixels = 8, 4 * 784, 16 * 784
    assert reasoner.dtype == torch.bfloat16 and reasoner.device.type == "cuda"
    answer = reasoner.ask(prompts.VOICE_OVER_QUESTION, video=clip, audio=tone(2.0, 16000))
    assert 1 <= answer.record["tokens_out"] <= 4


@pytest.mark.slow
@pytest.mark.gpu
@pytest.mark.media
def test_published_qwen25_omni_hears_the_dialogue(media_dir: Path) -> None:
    """With the published 7B weights in the local cache: a film dialogue is heard as speech, and answered."""
    from deepsound.media import read_audio
    from deepsound.steps.cot import parse_voice_over_cot

    try:
        reasoner = Components(PipelineConfig(device="cuda", offline=True)).mllm
    except WeightsError as exc:
        pytest.skip(str(exc))
    path = media_dir / "00000003.gt.mp4"
    answer = reasoner.ask(
        prompts.VOICE_OVER_QUESTION,
        video=path,
        audio=read_audio(path),
        system=prompts.VOICE_OVER_SYSTEM_PROMPT,
    )
    assert parse_voice_over_cot(answer.text).has_voice_over is not None, answer.text
    heard = reasoner.ask("Is someone speaking in this audio? Answer yes or no.", audio=read_audio(path))
    assert heard.text.lower().startswith("yes"), heard.text
