"""Held-out evaluation: the judge's accuracy, the parse rate of its answers, the plan's, and the loss.

Answers are generated greedily with the prompts the pipeline uses and read by
the pipeline's own parsers, so the numbers say how the fine-tuned model will
do as the step-2 judge (and step-0 planner), not how well it copies text.
Accuracy counts an unreadable answer as wrong; the parse rate of chain-of-thought
samples counts answers whose ``<CONCLUSION>`` was read, that of bare-letter
samples answers that chose an option at all.
"""

from __future__ import annotations

from typing import Any

from deepsound.dataset.manifest import Sample
from deepsound.interfaces import CANONICAL_STEPS
from deepsound.steps.cot import parse_voice_over_cot
from deepsound.steps.plan import parse_plan


def sample_loss(base: Any, sample: Sample, encode: Any = None) -> float:
    import torch

    with torch.no_grad():
        return float(base.loss((encode or base.encode)(sample)))


def evaluate(
    base: Any, samples: list[Sample], *, max_new_tokens: int = 512, answers: bool = True, encode: Any = None
) -> dict[str, Any]:
    """Metrics over ``samples`` (the held-out split); ``answers=False`` only measures the loss.

    ``encode`` replaces ``base.encode`` (the trainer passes its cached one).
    """
    model = base.model
    was_training = model.training
    model.eval()
    try:
        losses = [sample_loss(base, s, encode) for s in samples]
        result: dict[str, Any] = {
            "eval_samples": len(samples),
            "eval_loss": round(sum(losses) / len(losses), 5) if losses else None,
        }
        if not answers:
            return result
        judged = [s for s in samples if s.task.startswith("step2")]
        plans = [s for s in samples if s.task == "step0_plan"]
        rows = []
        for sample in judged + plans:
            budget = min(max_new_tokens, base.answer_tokens(sample.answer) + 8)
            text = base.answer(sample, budget)
            if sample.task == "step0_plan":
                plan = parse_plan(text, source="eval", allow_partial=False)
                ok = not plan.warnings and tuple(plan.steps) == CANONICAL_STEPS
                rows.append(
                    {"id": sample.id, "task": sample.task, "parsed": ok, "correct": ok, "answer": text}
                )
                continue
            parsed = parse_voice_over_cot(text)
            read = (
                parsed.parsed_from == "conclusion"
                if sample.task == "step2_cot"
                else parsed.has_voice_over is not None
            )
            rows.append({
                "id": sample.id, "task": sample.task, "parsed": read,
                "correct": parsed.has_voice_over is not None and parsed.has_voice_over == sample.has_voice_over,
                "verdict": parsed.has_voice_over, "label": sample.label, "answer": text,
            })  # fmt: skip
        for task in sorted({r["task"] for r in rows}):
            chosen = [r for r in rows if r["task"] == task]
            result[task] = {
                "samples": len(chosen),
                "accuracy": round(sum(r["correct"] for r in chosen) / len(chosen), 4),
                "parse_rate": round(sum(r["parsed"] for r in chosen) / len(chosen), 4),
            }
        step2 = [r for r in rows if r["task"].startswith("step2")]
        if step2:
            result["judge_accuracy"] = round(sum(r["correct"] for r in step2) / len(step2), 4)
            result["parse_rate"] = round(sum(r["parsed"] for r in step2) / len(step2), 4)
            labels = [r["label"] for r in step2]
            result["chance_accuracy"] = round(max(labels.count("A"), labels.count("B")) / len(labels), 4)
        result["answers"] = rows
        return result
    finally:
        model.train(was_training)
