"""The VideoLLaMA2 reasoner (modes, records, the reference's parser) and `deepsound ask`.

Runs on tiny official-format checkpoint folders written by write_tiny_checkpoint (random
weights; the official code loads the same folders, see test_videollama2.py for the goldens)
and on a short synthetic clip with a soundtrack, written here.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from deepsound.audio import Audio
from deepsound.config import MllmConfig, PipelineConfig
from deepsound.errors import ConfigError, WeightsError
from deepsound.models.videollama2.reasoner import VideoLlamaReasoner, VideoLlamaSettings, load_chat
from deepsound.steps.voice_over import ask_voice_over, reference_voice_over
from deepsound.testing import tiny as toy
from deepsound.testing.videollama2_checkpoint import write_tiny_checkpoint

STEP2 = (
    "Given a video and its corresponding audio, determine whether the audio contains voice-over? "
    "Options: A. Yes, B. No. Choose A or B."
)


def _write_clip(path: Path, seconds: float = 3.0, fps: int = 10) -> Path:
    import av

    rate = 16_000
    with av.open(str(path), "w") as out:
        video = out.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = 64, 48, "yuv420p"
        audio = out.add_stream("aac", rate=rate)
        audio.layout = "mono"
        for i in range(int(seconds * fps)):
            pixels = np.full((48, 64, 3), (i * 9) % 255, dtype=np.uint8)
            pixels[:, : 2 + i, 0] = 255
            for packet in video.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                out.mux(packet)
        tone = (0.2 * np.sin(2 * np.pi * 330 * np.arange(int(seconds * rate)) / rate)).astype(np.float32)
        for start in range(0, tone.size, 1024):
            frame = av.AudioFrame.from_ndarray(tone[None, start : start + 1024], format="fltp", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = rate, start, Fraction(1, rate)
            for packet in audio.encode(frame):
                out.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode(None):
                out.mux(packet)
    return path


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vl2")
    return {
        "cot": write_tiny_checkpoint(root / "cot", seed=0),
        "qa": write_tiny_checkpoint(root / "qa", seed=1),
        "clip": _write_clip(root / "clip.mp4"),
    }


@pytest.fixture(scope="module")
def reasoner(folders) -> VideoLlamaReasoner:
    settings = VideoLlamaSettings(
        mode="qa", cot_model=str(folders["cot"]), qa_model=str(folders["qa"]), device="cpu", max_new_tokens=6
    )
    return VideoLlamaReasoner.load(settings)


def test_reference_parser_rules():
    assert (
        reference_voice_over("<REASONING>x</REASONING><CONCLUSION>\nA. Yes", "cot")["reference_verdict"]
        is True
    )
    assert reference_voice_over("<CONCLUSION> B. No", "cot")["reference_verdict"] is False
    # the tag followed directly by the letter: the reference reads the character after it
    assert reference_voice_over("<CONCLUSION>A</CONCLUSION>", "cot")["reference_verdict"] is False
    broken = reference_voice_over("no tags at all<CONCLUSION>", "cot")
    assert broken["reference_verdict"] is None and "IndexError" in broken["reference_error"]
    assert reference_voice_over("A", "qa")["reference_verdict"] is True
    assert reference_voice_over("A.", "qa")["reference_verdict"] is False


def test_qa_mode_asks_step0_of_the_cot_model_and_step2_of_the_qa_model(reasoner, folders):
    plan = reasoner.ask(
        "Generate high-quality audio from video step-by-step.", video=folders["clip"], step="step0"
    )
    assert plan.record["model"] == str(folders["cot"]) and plan.record["model_kind"] == "cot"
    assert "audio_seconds" not in plan.record["inputs"]
    assert len(plan.record["token_ids"]) == 6 and plan.text == plan.record["answer"]

    tone = Audio(np.tile(0.1 * np.sin(np.linspace(0, 600, 44_100 * 2)), (2, 1)).astype(np.float32), 44_100)
    judged = reasoner.ask(STEP2, video=folders["clip"], audio=tone, system="a system prompt", step="step2")
    record = judged.record
    assert record["model"] == str(folders["qa"]) and record["model_kind"] == "qa"
    assert record["system"] is None and record["system_ignored"] == "a system prompt"
    assert record["inputs"]["audio_seconds"] == pytest.approx(2.0, abs=0.01)
    assert record["inputs"]["video_frames"] == 20  # frames end where the 2-s audio ends (10 fps clip)
    assert list(reasoner.calls)[-1] is record
    _, _, step2 = ask_voice_over(reasoner, folders["clip"], tone)  # step 2 adds the reference's own parse
    assert step2.record["model_kind"] == "qa" and step2.record["reference_rule"] == "answer == 'A'"
    assert step2.record["parsers_disagree"] == (
        step2.record["reference_verdict"] != step2.record["tolerant_verdict"]
    )
    # the two models are different checkpoints: the same step-2 question gets different ids
    again = reasoner.ask(STEP2, video=folders["clip"], audio=tone, step="step0")
    assert again.record["model_kind"] == "cot" and again.record["token_ids"] != record["token_ids"]


def test_disagreement_between_parsers_is_flagged(reasoner, folders, monkeypatch):
    from deepsound.models.videollama2.chat import Reply

    def fixed(*_, **__):
        return Reply("<CONCLUSION>A</CONCLUSION>", [1], "p", 3, {}, 0.0)

    monkeypatch.setattr(reasoner.cot, "answer", fixed)
    monkeypatch.setattr(reasoner, "mode", "cot")
    tone = Audio(np.zeros((1, 16_000), dtype=np.float32), 16_000)
    record = ask_voice_over(reasoner, folders["clip"], tone)[2].record
    assert record["tolerant_verdict"] is True and record["reference_verdict"] is False
    assert record["parsers_disagree"] is True


def test_offload_path_answers_like_the_plain_path(folders):
    base = dict(cot_model=str(folders["cot"]), device="cpu", max_new_tokens=5)
    plain = load_chat(folders["cot"], VideoLlamaSettings(**base))
    offloaded = load_chat(folders["cot"], VideoLlamaSettings(**base, offload=True))
    pixels, fbank, _ = plain.media(folders["clip"], None, with_audio=True)
    assert plain.answer(STEP2, pixels, fbank, max_new_tokens=5).token_ids == (
        offloaded.answer(STEP2, pixels, fbank, max_new_tokens=5).token_ids
    )


def test_quantisation_needs_cuda(folders):
    settings = VideoLlamaSettings(cot_model=str(folders["cot"]), device="cpu", quantization="8bit")
    with pytest.raises(ConfigError, match="needs a CUDA device"):
        load_chat(folders["cot"], settings)


def test_component_is_registered_and_fails_offline_in_one_line(folders, tmp_path, monkeypatch):
    from deepsound.registry import Components

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    config = PipelineConfig(offline=True, device="cpu", mllm=MllmConfig(name="videollama2-cot"))
    with pytest.raises(WeightsError, match="offline"):
        Components(config).get("mllm")
    config = PipelineConfig(device="cpu", mllm=MllmConfig(name="videollama2-cot", model=str(folders["cot"])))
    mllm = Components(config).mllm
    assert isinstance(mllm, VideoLlamaReasoner) and mllm.max_new_tokens == 2048


def _ask(*args: str):
    from deepsound.cli import app

    return CliRunner().invoke(app, ["ask", *args])


def test_ask_prints_text_and_generated_ids(folders, tmp_path):
    import soundfile

    clip = str(folders["clip"])
    common = ["--mllm-model", str(folders["cot"]), "--max-new-tokens", "4", "--device", "cpu"]
    silent = _ask(clip, "--question", "Describe the video.", *common)
    assert silent.exit_code == 0, silent.output
    row = json.loads(silent.stdout.strip().splitlines()[-1])
    assert row["mllm"] == "videollama2-cot" and len(row["token_ids"]) == 4 and isinstance(row["text"], str)
    assert "<video>\nDescribe the video." in row["prompt"] and "audio_seconds" not in row["inputs"]

    heard = json.loads(
        _ask(clip, "--question", STEP2, "--with-audio", *common).stdout.strip().splitlines()[-1]
    )
    assert heard["inputs"]["audio_seconds"] == pytest.approx(3.0, abs=0.1) and "reference_verdict" in heard
    wav = tmp_path / "a.wav"
    soundfile.write(wav, np.zeros(8000, dtype=np.float32), 16_000)
    other = json.loads(
        _ask(clip, str(wav), "--question", STEP2, "--with-audio", *common).stdout.splitlines()[-1]
    )
    assert other["inputs"]["audio_seconds"] == 0.5 and other["inputs"]["video_frames"] == 5


def test_ask_on_another_model_type_is_one_line(tmp_path, folders):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llava_llama"}))
    result = _ask(
        str(folders["clip"]), "--question", "q", "--mllm", "videollama2-cot", "--mllm-model", str(tmp_path)
    )
    assert result.exit_code != 0 and len(result.output.strip().splitlines()) == 1
    assert "llava_llama" in result.output and "supported families" in result.output


@pytest.mark.timeout(300)
def test_ask_works_for_qwen_omni(folders, tmp_path):

    folder = toy.omni_reasoner(max_new_tokens=3).export_checkpoint(tmp_path / "omni")
    result = _ask(
        str(folders["clip"]),
        "--question",
        "What is heard?",
        "--with-audio",
        "--mllm-model",
        str(folder),
        "--max-new-tokens",
        "3",
        "--device",
        "cpu",
    )
    assert result.exit_code == 0, result.output
    row = json.loads(result.stdout.strip().splitlines()[-1])
    assert row["mllm"] == "omni" and 1 <= len(row["token_ids"]) <= 3
    assert torch.tensor(row["token_ids"]).dtype == torch.int64


def test_a_hub_tower_id_is_found_through_the_weights_folder(folders, tmp_path, monkeypatch):
    import shutil

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("DEEPSOUND_CACHE", str(tmp_path / "cache"))
    checkpoint = tmp_path / "VideoLLaMA2.1-7B-AV-CoT"
    shutil.copytree(folders["cot"], checkpoint, ignore=shutil.ignore_patterns("siglip-tiny"))
    config = json.loads((checkpoint / "config.json").read_text())
    (checkpoint / "config.json").write_text(
        json.dumps({**config, "mm_vision_tower": "google/siglip-so400m-patch14-384"})
    )
    weights = tmp_path / "weights"
    shutil.copytree(folders["cot"] / "siglip-tiny", weights / "ext_weights" / "siglip-so400m-patch14-384")
    with pytest.raises(WeightsError, match="SigLIP tower is not available locally"):
        load_chat(checkpoint, VideoLlamaSettings(device="cpu", offline=True))
    chat = load_chat(checkpoint, VideoLlamaSettings(device="cpu", offline=True, weights_dir=weights))
    assert chat.model.vision.config.image_size == 28


def test_the_planner_and_the_judge_drive_the_reasoner(reasoner, folders):
    from deepsound.steps.plan import MllmPlanner
    from deepsound.steps.voice_over import MllmJudge

    plan = MllmPlanner(reasoner).plan(folders["clip"])
    assert plan.mllm_calls[0]["step"] == "step0" and plan.mllm_calls[0]["model_kind"] == "cot"
    tone = Audio(np.zeros((1, 32_000), dtype=np.float32), 16_000)
    verdict = MllmJudge(reasoner).judge(folders["clip"], tone)
    call = verdict.mllm_calls[0]
    assert call["step"] == "step2" and call["model_kind"] == "qa"
    assert (
        call["verdict"] == verdict.evidence["mllm_verdict"]
    )  # the judge's own parse, beside the reference's
    assert "reference_verdict" in call and "parsers_disagree" in call
