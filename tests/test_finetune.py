"""``deepsound finetune``: LoRA on a tiny real Qwen2.5-Omni thinker, end to end on the CPU.

A dataset is built from clips whose voice-over status is known (see
:mod:`cot_clips`; step 1 is a stand-in that returns each clip's soundtrack with
or without espeak-ng speech, everything after it is real). The tiny thinker is
exported to a checkpoint folder and loaded from it as a downloaded model would
be (its random weights are drawn so that its audio tower tells sounds apart, see
:func:`cot_clips.learnable_tiny_reasoner`). It is fine-tuned through the command
line on the bare-letter samples; the held-out clips must then be judged better
than chance, the adapter must reload to the same answers, be refused by another
base, and load into ``deepsound judge`` and ``--mllm-model`` (merged).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from cot_clips import espeak_available, learnable_tiny_reasoner, make_clips
from typer.testing import CliRunner

from deepsound.cli import app
from deepsound.config import PipelineConfig
from deepsound.dataset.builder import BuildSettings, DatasetBuilder
from deepsound.dataset.manifest import Sample, read_manifest
from deepsound.models.qwen_omni.reasoner import OmniReasoner
from deepsound.registry import Components
from deepsound.testing import tiny as toy
from deepsound.training.adapter import AdapterMismatchError, apply_adapter, weights_fingerprint
from deepsound.training.evaluation import evaluate
from deepsound.training.trainer import split_samples

pytestmark = pytest.mark.skipif(not espeak_available(), reason="espeak-ng is not installed")

TRAIN = ["--tasks", "step2_qa", "--lora-r", "8", "--lora-alpha", "32", "--lora-dropout", "0", "--lr", "5e-3"]
TRAIN += ["--grad-accum", "3", "--warmup-ratio", "0.1", "--held-out", "0.25"]
TRAIN += ["--projectors", "--towers", "--device", "cpu", "--offline", "--quiet"]
TRAIN += [
    "--max-frames",
    "8",
    "--min-pixels",
    "3136",
    "--max-pixels",
    "12544",
]  # the tiny model's own budgets


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("finetune")
    videos, _, generator = make_clips(root / "clips", ["vo", "clean"] * 12, noise_only=True)
    DatasetBuilder(
        Components(PipelineConfig(), {"generator": generator}), BuildSettings(duration=2.0, separator=False)
    ).build(videos, root / "data")
    base = learnable_tiny_reasoner().export_checkpoint(root / "base")
    return {"root": root, "data": root / "data", "base": base}


@pytest.fixture(scope="module")
def trained(world: dict[str, Path]) -> Path:
    adapter = world["root"] / "adapter"
    args = ["finetune", str(world["data"]), "--base", "qwen-omni", "--base-model", str(world["base"])]
    result = CliRunner().invoke(app, [*args, "-o", str(adapter), "--epochs", "12", *TRAIN])
    assert result.exit_code == 0, result.output
    return adapter


def _metrics(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]


def test_loss_falls_and_held_out_accuracy_rises_above_chance(trained: Path, world: dict[str, Path]) -> None:
    history = _metrics(trained)
    assert [m["epoch"] for m in history] == list(range(1, 13))
    first, last = history[0], history[-1]
    assert last["train_loss"] < 0.5 * first["train_loss"]
    assert last["eval_loss"] < first["eval_loss"]
    assert last["eval_samples"] == 6 and last["chance_accuracy"] == 0.5  # 3 clips of each label held out
    assert last["judge_accuracy"] > last["chance_accuracy"]
    assert last["parse_rate"] == 1.0
    info = json.loads((trained / "deepsound_adapter.json").read_text())
    base = OmniReasoner.load(world["base"], offline=True)
    assert info["base_model"] == str(world["base"]) and info["base_checksum"] == weights_fingerprint(
        base.model
    )
    assert (trained / "adapter_model.safetensors").is_file()
    assert len(list((trained / "checkpoints").iterdir())) == 2  # the last two are kept


def test_the_reloaded_adapter_gives_the_same_held_out_answers(trained: Path, world: dict[str, Path]) -> None:
    run = json.loads((trained / "run.json").read_text())
    held = [s for s in read_manifest(world["data"], ("step2_qa",)) if s.clip in set(run["eval_clips"])]
    reasoner = apply_adapter(OmniReasoner.load(world["base"], offline=True), trained)
    from deepsound.training.bases import OmniBase

    result = evaluate(OmniBase(reasoner), held)
    saved = json.loads((trained / "eval_answers.json").read_text())
    assert [r["answer"] for r in result["answers"]] == [r["answer"] for r in saved]
    assert result["judge_accuracy"] == _metrics(trained)[-1]["judge_accuracy"]


def _muxed_held_out(trained: Path, world: dict[str, Path], folder: Path) -> list[tuple[Path, str]]:
    """The held-out videos with their generated audio as soundtrack (what step 2 judges)."""
    from deepsound.media import mux_audio, read_audio

    run = json.loads((trained / "run.json").read_text())
    out = []
    folder.mkdir(exist_ok=True)
    for sample in read_manifest(world["data"], ("step2_qa",)):
        if sample.clip in set(run["eval_clips"]):
            target = folder / f"{sample.clip}.mp4"
            mux_audio(sample.video, read_audio(sample.audio), target)
            out.append((target, sample.label))
    return out


def test_judge_command_uses_the_adapter_and_refuses_one_for_another_base(
    trained: Path, world: dict[str, Path], tmp_path: Path
) -> None:
    clips = _muxed_held_out(trained, world, tmp_path / "muxed")
    common = ["judge", *[str(v) for v, _ in clips], "--judge", "mllm", "--device", "cpu", "--offline"]
    common += ["--max-new-tokens", "4"]
    result = CliRunner().invoke(
        app, [*common, "--mllm-model", str(world["base"]), "--mllm-adapter", str(trained)]
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(rows) == len(clips) == 6
    assert all(r["evidence"]["mllm_model"] == f"{world['base']}+{trained.name}" for r in rows)
    assert all(r["mllm_calls"] == 1 and isinstance(r["cot"], str) for r in rows)

    other = toy.omni_reasoner(seed=7).export_checkpoint(tmp_path / "other")
    refused = CliRunner().invoke(app, [*common, "--mllm-model", str(other), "--mllm-adapter", str(trained)])
    assert refused.exit_code == 2
    message = refused.output.strip().splitlines()[-1]  # one line (after the loader's progress bar)
    assert (
        message.startswith("error:") and "adapter was trained on" in message and str(world["base"]) in message
    )
    with pytest.raises(AdapterMismatchError):
        apply_adapter(toy.omni_reasoner(seed=7), trained)


def test_merge_writes_a_folder_that_mllm_model_loads(
    trained: Path, world: dict[str, Path], tmp_path: Path
) -> None:
    merged = tmp_path / "merged"
    result = CliRunner().invoke(
        app, ["finetune", "--merge", str(trained), "-o", str(merged), "--device", "cpu"]
    )
    assert result.exit_code == 0, result.output
    run = json.loads((trained / "run.json").read_text())
    sample = next(s for s in read_manifest(world["data"], ("step2_qa",)) if s.clip == run["eval_clips"][0])
    from deepsound.media import read_audio

    ask = {"video": sample.video, "audio": read_audio(sample.audio)}
    from_folder = OmniReasoner.load(merged, offline=True, max_new_tokens=3).ask(sample.question, **ask).text
    applied = apply_adapter(OmniReasoner.load(world["base"], offline=True, max_new_tokens=3), trained)
    assert from_folder == applied.ask(sample.question, **ask).text
    again = CliRunner().invoke(
        app, ["finetune", "--merge", str(trained), "-o", str(merged), "--device", "cpu"]
    )
    assert again.exit_code == 2 and "not empty" in again.output


def test_resume_continues_from_the_last_checkpoint(world: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["finetune", str(world["data"]), "--base-model", str(world["base"]), "-o", str(out), *TRAIN]
    args += ["--held-out", "0.5"]
    assert CliRunner().invoke(app, [*args, "--epochs", "1"]).exit_code == 0
    first = _metrics(out)
    refused = CliRunner().invoke(app, [*args, "--epochs", "2"])
    assert refused.exit_code == 2 and "--resume" in refused.output
    resumed = CliRunner().invoke(app, [*args, "--epochs", "2", "--resume"])
    assert resumed.exit_code == 0, resumed.output
    history = _metrics(out)
    assert len(history) == 2 and history[0] == first[0]
    assert history[1]["step"] == 2 * first[0]["step"]


def test_a_dataset_line_with_a_missing_file_stops_before_any_model_loads(
    world: dict[str, Path], tmp_path: Path
) -> None:
    lines = (world["data"] / "manifest.jsonl").read_text().splitlines()
    row = json.loads(lines[4])
    row["video"] = str(tmp_path / "vanished.mp4")
    lines[4] = json.dumps(row)
    broken = world["data"] / "broken.jsonl"
    broken.write_text("\n".join(lines) + "\n")
    try:
        result = CliRunner().invoke(
            app,
            ["finetune", str(broken), "--base-model", str(tmp_path / "no-model"), "-o", str(tmp_path / "o")],
        )
    finally:
        broken.unlink()
    assert result.exit_code == 2
    assert "broken.jsonl:5: video file" in result.output and "vanished.mp4 does not exist" in result.output


def test_a_base_family_that_is_not_installed_is_one_line(
    world: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # this installation holds the family; the check must still say one line where one does not
    find_spec = importlib.util.find_spec

    def without_videollama2(name: str, *args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        return None if name == "deepsound.models.videollama2" else find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", without_videollama2)
    result = CliRunner().invoke(
        app, ["finetune", str(world["data"]), "--base", "videollama2-cot", "-o", str(tmp_path)]
    )
    assert result.exit_code == 2 and "VideoLLaMA2" in result.output and "--base qwen-omni" in result.output


def _sample(clip: str, label: str | None, task: str = "step2_qa") -> Sample:
    return Sample(f"{clip}/{task}", clip, task, Path("v.mp4"), None, "q", label or "x", label=label)


def test_split_is_by_clip_and_stratified_by_label() -> None:
    samples = [_sample(f"c{i}", "AB"[i % 2], task) for i in range(20) for task in ("step2_qa", "step2_cot")]
    train, held = split_samples(samples, 0.2, seed=3)
    held_clips = {s.clip for s in held}
    assert not held_clips & {s.clip for s in train}
    assert len(held_clips) == 4 and sorted(s.label for s in held).count("A") == 4  # 2 clips x 2 tasks
    assert split_samples(samples, 0.2, seed=3) == (train, held)
    assert split_samples(samples, 0.2, seed=4)[1] != held


class _EchoBase:
    """A base that answers with a fixed function of the sample (orchestration of :func:`evaluate`)."""

    def __init__(self, answer) -> None:  # noqa: ANN001
        import torch

        self.model = torch.nn.Linear(1, 1)
        self._answer = answer

    def loss(self, inputs: dict) -> float:
        return 1.0

    def encode(self, sample: Sample) -> dict:
        import torch

        return {"input": torch.ones(1, 1)}

    def answer_tokens(self, text: str) -> int:
        return len(text)

    def answer(self, sample: Sample, max_new_tokens: int) -> str:
        return self._answer(sample)


def test_evaluation_reads_answers_with_the_pipeline_parsers(monkeypatch: pytest.MonkeyPatch) -> None:
    import deepsound.training.evaluation as evaluation
    from deepsound.dataset.cot import cot_answer
    from deepsound.dataset.evidence import label_clip
    from deepsound.interfaces import CANONICAL_PLAN_TEXT, SpeechReport

    monkeypatch.setattr(evaluation, "sample_loss", lambda base, sample, encode=None: 1.0)
    heard, silent = SpeechReport([(0.0, 1.0)], 0.5, 2.0), SpeechReport([], 0.0, 2.0)
    cots = {"A": cot_answer(label_clip(heard, silent)), "B": cot_answer(label_clip(silent, silent))}
    samples = [_sample("a", "A", "step2_cot"), _sample("b", "B", "step2_cot"), _sample("c", "B")]
    samples.append(Sample("p/step0_plan", "p", "step0_plan", Path("v.mp4"), None, "q", CANONICAL_PLAN_TEXT))
    perfect = evaluate(
        _EchoBase(
            lambda s: cots.get(s.label, "") if s.task == "step2_cot" else (s.label or CANONICAL_PLAN_TEXT)
        ),
        samples,
    )
    assert perfect["judge_accuracy"] == 1.0 and perfect["parse_rate"] == 1.0
    assert perfect["step0_plan"] == {"samples": 1, "accuracy": 1.0, "parse_rate": 1.0}
    wrong = evaluate(
        _EchoBase(lambda s: "<CONCLUSION>A. Yes</CONCLUSION>" if s.task == "step2_cot" else "hmm"), samples
    )
    assert wrong["step2_cot"] == {"samples": 2, "accuracy": 0.5, "parse_rate": 1.0}
    assert wrong["step2_qa"] == {"samples": 1, "accuracy": 0.0, "parse_rate": 0.0}
    assert wrong["step0_plan"]["accuracy"] == 0.0 and wrong["eval_loss"] == 1.0


def test_chain_of_thought_and_plan_samples_train_and_are_scored(
    world: dict[str, Path], tmp_path: Path
) -> None:
    """The long path: the judge's system prompt, the four-tag answer, the plan; one epoch on four clips."""
    rows = [json.loads(line) for line in (world["data"] / "manifest.jsonl").read_text().splitlines()]
    chosen = [r for r in rows if r["task"] in ("step2_cot", "step0_plan") and int(r["clip"][:2]) < 4]
    subset = world["data"] / "subset.jsonl"  # beside the audio folder its relative paths name
    subset.write_text("".join(json.dumps(r) + "\n" for r in chosen))
    out = tmp_path / "cot"
    try:
        result = CliRunner().invoke(
            app,
            ["finetune", str(subset), "--base-model", str(world["base"]), "-o", str(out), "--epochs", "1"]
            + ["--tasks", "step2_cot,step0_plan", "--held-out", "0.5", "--lora-r", "8", "--device", "cpu"]
            + ["--offline", "--quiet", "--max-frames", "8", "--min-pixels", "3136", "--max-pixels", "12544"],
        )
    finally:
        subset.unlink()
    assert result.exit_code == 0, result.output
    (metrics,) = _metrics(out)
    assert metrics["eval_samples"] == 4 and metrics["step2_cot"]["samples"] == 2
    assert metrics["step0_plan"]["samples"] == 2
    assert 0.0 <= metrics["parse_rate"] <= 1.0 and metrics["train_loss"] > 0
    answers = json.loads((out / "eval_answers.json").read_text())
    assert {a["task"] for a in answers} == {"step2_cot", "step0_plan"}
