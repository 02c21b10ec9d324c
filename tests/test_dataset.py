"""``deepsound dataset build``: labels from measured speech, checked against how each clip was made.

Clips come from :mod:`cot_clips` (PyAV test patterns; espeak-ng speech mixed
into some soundtracks). Step 1 is the :class:`cot_clips.SoundtrackGenerator`
stand-in (orchestration only: it returns audio whose content the test knows);
the speech detector (Silero VAD with its shipped weights), the separator (the
real BS-RoFormer at tiny size, random weights: its vocal share is a real
measurement of a meaningless model, so only its range and bookkeeping are
checked), the writers and the parsers are the real ones.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cot_clips import espeak_available, make_clips
from typer.testing import CliRunner

from deepsound.config import PipelineConfig
from deepsound.dataset.builder import BuildSettings, DatasetBuilder, clip_id
from deepsound.dataset.evidence import REASON_NO_SPEECH, REASON_ON_SCREEN, REASON_VOICE_OVER
from deepsound.dataset.manifest import DatasetError, read_manifest
from deepsound.interfaces import CANONICAL_PLAN_TEXT, CANONICAL_STEPS
from deepsound.registry import Components
from deepsound.steps.cot import parse_voice_over_cot
from deepsound.steps.plan import parse_plan
from deepsound.steps.prompts import VOICE_OVER_QUESTION, VOICE_OVER_SYSTEM_PROMPT
from deepsound.testing import tiny as toy

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")

KINDS = ["vo", "clean", "onscreen", "mute", "vo", "clean", "onscreen"]
EXPECTED = {
    "vo": ("A", REASON_VOICE_OVER),
    "clean": ("B", REASON_NO_SPEECH),
    "onscreen": ("B", REASON_ON_SCREEN),
}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("cot")
    videos, kinds, generator = make_clips(root / "clips", KINDS)
    components = Components(PipelineConfig(), {"generator": generator})
    builder = DatasetBuilder(components, BuildSettings(duration=2.0, separator=False))
    summary = builder.build(videos, root / "data")
    return root / "data", videos, kinds, generator, summary, builder


def _records(folder: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (folder / "clips").glob("*.json")}


def test_labels_match_how_the_clips_were_made(built) -> None:
    folder, videos, kinds, _, summary, _ = built
    records = _records(folder)
    for video in videos:
        kind = kinds[video]
        if kind == "mute":
            assert clip_id(video) not in records
            continue
        evidence = records[clip_id(video)]["evidence"]
        assert (evidence["label"], evidence["reason"]) == EXPECTED[kind], video.name
        assert evidence["generated"]["has_speech"] == (kind != "clean")
        assert evidence["original"]["has_speech"] == (kind == "onscreen")
        assert evidence["vocal_share"] is None and evidence["consistent"] is None
    assert summary["labels"] == {"A": 2, "B": 4} and summary["clips"] == 6
    assert summary["voice_over_share"] == pytest.approx(2 / 6, abs=1e-4)
    assert summary["label_reasons"] == {REASON_VOICE_OVER: 2, REASON_NO_SPEECH: 2, REASON_ON_SCREEN: 2}
    assert summary["by_label"]["A"]["mean_generated_speech_ratio"] > 0.3
    assert summary["by_label"]["A"]["mean_original_speech_ratio"] == 0.0
    assert summary["separator_vs_vad"] == {"unmeasured": 6}
    (skipped,) = summary["skipped"]
    assert skipped["video"].endswith("03_mute.mp4") and "no soundtrack" in skipped["reason"]
    assert json.loads((folder / "summary.json").read_text())["labels"] == summary["labels"]


def test_manifest_holds_three_kinds_of_sample_per_clip_with_media_and_evidence(built) -> None:
    folder, *_ = built
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    assert len(rows) == 18
    assert {r["task"] for r in rows} == {"step0_plan", "step2_cot", "step2_qa"}
    samples = read_manifest(folder)
    for row, sample in zip(rows, samples, strict=True):
        assert sample.video.is_file() and Path(row["video"]).is_absolute()
        assert row["conversations"][0]["from"] == "human" and row["conversations"][1]["from"] == "gpt"
        if row["task"] == "step0_plan":
            assert sample.audio is None and sample.answer == CANONICAL_PLAN_TEXT
            assert parse_plan(sample.answer).steps == list(CANONICAL_STEPS)
            continue
        assert sample.audio == folder / row["audio"] and sample.audio.is_file()
        assert sample.question == VOICE_OVER_QUESTION
        assert (
            row["evidence"]["label"] == row["label"] and row["evidence"]["generator"] == "soundtrack-stand-in"
        )
        if row["task"] == "step2_qa":
            assert sample.answer == row["label"] and sample.system is None


def test_chain_of_thought_has_the_four_tags_reads_back_and_claims_only_what_was_measured(built) -> None:
    folder, *_ = built
    for sample in read_manifest(folder, ("step2_cot",)):
        text = sample.answer
        positions = [text.index(f"<{tag}>") for tag in ("SUMMARY", "CAPTION", "REASONING", "CONCLUSION")]
        assert positions == sorted(positions) and text.rstrip().endswith("</CONCLUSION>")
        parsed = parse_voice_over_cot(text)
        assert parsed.parsed_from == "conclusion" and parsed.has_voice_over == (sample.label == "A")
        assert sample.system == VOICE_OVER_SYSTEM_PROMPT
        caption = parsed.sections["caption"]
        assert "video shows" not in caption.lower()  # no captioner: nothing is said about the pictures
        assert ("No human speech is heard" in caption) == (
            sample.label == "B" and "clean" in sample.video.name
        )


def test_a_rebuild_resumes_without_generating_again(built) -> None:
    folder, videos, _, generator, summary, builder = built
    before = (folder / "manifest.jsonl").read_text()
    calls = generator.calls
    again = builder.build(videos, folder)
    assert generator.calls == calls
    assert again["this_run"] == {"resumed": 6, "skipped": 1}
    assert (folder / "manifest.jsonl").read_text() == before


def test_the_separator_vocal_share_is_kept_and_compared_with_the_speech_detector(
    built, tmp_path: Path
) -> None:

    _, videos, kinds, generator, _, _ = built
    components = Components(
        PipelineConfig(), {"generator": generator, "separator": toy.bs_roformer_separator()}
    )
    summary = DatasetBuilder(components, BuildSettings(duration=2.0, kinds=("qa",))).build(
        videos[:2], tmp_path / "sep"
    )
    for record in _records(tmp_path / "sep").values():
        evidence = record["evidence"]
        assert 0.0 <= evidence["vocal_share"] <= 1.0 and evidence["separator"] == "bs_roformer"
        heard = evidence["generated"]["has_speech"]
        assert evidence["consistent"] == ((evidence["vocal_share"] >= 0.1) == heard)
    assert sum(summary["separator_vs_vad"].values()) == 2
    assert summary["by_label"]["A"]["mean_vocal_share"] is not None


def test_limit_stops_once_enough_clips_are_in(built, tmp_path: Path) -> None:
    _, videos, _, generator, _, _ = built
    components = Components(PipelineConfig(), {"generator": generator})
    summary = DatasetBuilder(components, BuildSettings(duration=2.0, separator=False, limit=2)).build(
        videos, tmp_path / "two"
    )
    assert summary["clips"] == 2 and summary["separator_vs_vad"] == {"unmeasured": 2}


def test_caption_from_the_mllm_is_quoted_in_the_chain_of_thought(built, tmp_path: Path) -> None:

    _, videos, _, generator, _, _ = built
    components = Components(
        PipelineConfig(), {"generator": generator, "mllm": toy.omni_reasoner(max_new_tokens=6)}
    )
    settings = BuildSettings(duration=2.0, separator=False, caption=True, kinds=("cot",))
    DatasetBuilder(components, settings).build(videos[:1], tmp_path / "cap")
    (sample,) = read_manifest(tmp_path / "cap")
    record = next(iter(_records(tmp_path / "cap").values()))
    assert isinstance(record["caption"], str)
    assert "The video shows:" in parse_voice_over_cot(sample.answer).sections["caption"]


def test_a_manifest_line_naming_a_missing_file_fails_with_its_line_number(built, tmp_path: Path) -> None:
    folder, *_ = built
    lines = (folder / "manifest.jsonl").read_text().splitlines()
    row = json.loads(lines[2])
    row["audio"] = "audio/gone.wav"
    lines[2] = json.dumps(row)
    broken = folder / "broken.jsonl"  # beside the audio folder its relative paths name
    broken.write_text("\n".join(lines) + "\n")
    with pytest.raises(DatasetError, match=r"broken\.jsonl:3: audio file audio/gone.wav does not exist"):
        read_manifest(broken)
    broken.unlink()
    (tmp_path / "bad.jsonl").write_text(lines[0] + "\n{not json\n")
    with pytest.raises(DatasetError, match=r"bad\.jsonl:2: not valid JSON"):
        read_manifest(tmp_path / "bad.jsonl")


def test_command_line_builds_with_a_registered_generator(built, tmp_path: Path) -> None:
    from deepsound import registry
    from deepsound.cli import app

    _, videos, _, generator, _, _ = built
    registry.register("generator", "cot-test-stand-in", lambda config, components: generator)
    listing = tmp_path / "videos.txt"
    listing.write_text("\n".join(str(v) for v in videos[:4]) + "\n")
    result = CliRunner().invoke(
        app,
        ["dataset", "build", str(listing), "-o", str(tmp_path / "out"), "--generator", "cot-test-stand-in"]
        + ["--no-separator", "--duration", "2", "--kinds", "cot,qa", "--quiet"],
    )
    assert result.exit_code == 0, result.output
    brief = json.loads(result.stdout.strip().splitlines()[-1])
    assert brief["clips"] == 3 and brief["samples"] == 6 and brief["labels"] == {"A": 1, "B": 2}
    bad = CliRunner().invoke(
        app, ["dataset", "build", str(listing), "-o", str(tmp_path / "x"), "--kinds", "nope"]
    )
    assert bad.exit_code == 2 and "unknown sample kind" in bad.output  # a configuration error
