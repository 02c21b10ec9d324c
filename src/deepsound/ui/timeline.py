"""The trace and the live progress of a run, as HTML a person can read.

The trace JSON answers every question about a run, but it is written for tools.
Here each step becomes one card: what it is called in the paper's words, the
component that ran it, how long it took, its decision in a sentence, the
evidence behind it as a small table, and, where the MLLM reasoned, its
``<SUMMARY>``/``<CAPTION>``/``<REASONING>``/``<CONCLUSION>`` sections
(read with :func:`deepsound.steps.cot.cot_sections`, the parser the
judge itself uses). Pure functions of plain dicts, so they are tested without
a browser.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from deepsound.progress import ProgressEvent
from deepsound.steps.cot import SECTIONS, cot_sections
from deepsound.trace import TraceReader, TraceStep

STEP_TITLES = {
    TraceStep.PLAN.value: "Step 0 · Plan the steps",
    TraceStep.GENERATE.value: "Step 1 · Generate audio from the video",
    TraceStep.DETECT_VOICE_OVER.value: "Step 2 · Does the audio hold a voice-over?",
    TraceStep.REMOVE_VOICE_OVER.value: "Step 3 · Remove the voice-over",
    TraceStep.CHECK_SILENCE.value: "Step 4 · Is what is left silent?",
    TraceStep.FALLBACK_RM.value: "Fallback rm · remove the audio",
    TraceStep.FALLBACK_REP.value: "Fallback rep · keep the step-1 audio",
    TraceStep.FALLBACK_NEG.value: "Fallback neg · regenerate, steering away from voice",
    "separate": "Remove voice · split voice from the rest",
    "screen": "Screen · judge each video's own audio",
}

# evidence keys shown elsewhere on the card (or too long for a table cell)
_HIDDEN_EVIDENCE = {"cot_text", "cot_sections", "plan_text"}
_MAX_CELL = 160


def step_title(step: str) -> str:
    return STEP_TITLES.get(step, step.replace("_", " "))


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        text = f"{value:.4g}"
    elif isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False, default=str)
    else:
        text = str(value)
    return text if len(text) <= _MAX_CELL else text[: _MAX_CELL - 1] + "…"


def _flatten(evidence: Mapping[str, Any], prefix: str = "") -> Iterable[tuple[str, Any]]:
    for key, value in evidence.items():
        if not prefix and key in _HIDDEN_EVIDENCE:
            continue
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value and len(value) <= 8:
            yield from _flatten(value, f"{name}.")
        else:
            yield name, value


def decision_sentence(step: str, decision: Any, evidence: Mapping[str, Any] | None = None) -> str:
    """The step's decision as a short sentence, with the one number behind it when there is one."""
    evidence = evidence or {}
    key = TraceStep.named(step)
    if key is TraceStep.GENERATE and evidence.get("duration") is not None:
        return f"generated {evidence['duration']:.2f} s of audio at {evidence.get('sample_rate')} Hz"
    if key is TraceStep.REMOVE_VOICE_OVER and isinstance(evidence.get("vocals_energy_share"), float):
        return f"separated: the voice held {100 * evidence['vocals_energy_share']:.0f}% of the energy"
    if key is TraceStep.PLAN and isinstance(decision, list):
        return "plan: " + " → ".join(str(s).replace("_", " ") for s in decision)
    if key is TraceStep.DETECT_VOICE_OVER and isinstance(decision, Mapping):
        has = decision.get("has_voice_over")
        said = decision.get("judge_said")
        text = "voice-over found" if has else "no voice-over"
        if said is None:
            text += " (the judge could not decide; the configured default was used)"
        return text
    if key is TraceStep.CHECK_SILENCE and isinstance(decision, Mapping):
        ratio = evidence.get("silent_frame_ratio")
        why = f" ({100 * ratio:.0f}% of frames are silent)" if isinstance(ratio, float | int) else ""
        return (
            "silent: the fallback runs" if decision.get("is_silent") else "not silent: the audio is kept"
        ) + why
    if decision is None:
        return "(no decision recorded)"
    if isinstance(decision, str):
        return decision
    return _cell(decision)


def reasoning_sections(record: Mapping[str, Any]) -> list[tuple[str, dict[str, str], str]]:
    """(question, sections, raw answer) for every MLLM answer of a step record.

    Sections come from the judge's own reading when present, otherwise they are
    parsed from the raw answer; an answer without tags keeps its raw text only.
    """
    out = []
    evidence = record.get("evidence") or {}
    calls = list(record.get("mllm_calls") or [])
    if not calls and evidence.get("cot_text"):
        calls = [{"prompt": "", "answer": evidence["cot_text"]}]
    for i, call in enumerate(calls):
        answer = str(call.get("answer") or "")
        given = evidence.get("cot_sections") if i == len(calls) - 1 else None
        sections = dict(given) if isinstance(given, Mapping) and given else cot_sections(answer)
        out.append((str(call.get("prompt") or ""), sections, answer))
    return out


def render_step(record: Mapping[str, Any]) -> str:
    step = str(record.get("step", "?"))
    parts = [f'<div class="ds-step" data-step="{_esc(step)}">']
    component = record.get("component")
    seconds = record.get("seconds")
    meta = " · ".join(
        x
        for x in (
            _esc(component) if component else "",
            f"{float(seconds):.2f} s" if seconds is not None else "",
        )
        if x
    )
    parts.append(
        f'<div class="ds-step-head"><b>{_esc(step_title(step))}</b> <span class="ds-meta">{meta}</span></div>'
    )
    parts.append(
        f'<div class="ds-decision">{_esc(decision_sentence(step, record.get("decision"), record.get("evidence")))}</div>'
    )
    evidence = record.get("evidence") or {}
    if evidence.get("plan_text") and not record.get("mllm_calls"):  # an MLLM's plan shows as its answer
        parts.append(f'<pre class="ds-plan">{_esc(evidence["plan_text"])}</pre>')
    for question, sections, answer in reasoning_sections(record):
        parts.append('<div class="ds-cot">')
        if question:
            parts.append(f'<div class="ds-question">MLLM asked: {_esc(_cell(question))}</div>')
        if sections:
            for name in SECTIONS:
                if sections.get(name):
                    parts.append(
                        f'<div class="ds-section"><span class="ds-tag">{name.upper()}</span> {_esc(sections[name])}</div>'
                    )
        else:
            parts.append(
                f'<div class="ds-section"><span class="ds-tag">ANSWER</span> {_esc(answer or "(empty)")}</div>'
            )
        parts.append("</div>")
    rows = list(_flatten(evidence))
    if rows:
        parts.append('<details class="ds-evidence"><summary>evidence</summary><table>')
        parts.extend(f"<tr><td>{_esc(k)}</td><td>{_esc(_cell(v))}</td></tr>" for k, v in rows)
        parts.append("</table></details>")
    for kind, path in (record.get("outputs") or {}).items():
        parts.append(f'<div class="ds-meta">wrote {_esc(kind)}: {_esc(str(path).rsplit("/", 1)[-1])}</div>')
    parts.append("</div>")
    return "".join(parts)


def render_trace(trace: Mapping[str, Any]) -> str:
    """The whole run: one card per step, then warnings and the outcome."""
    reader = TraceReader(dict(trace))
    parts = ['<div class="ds-timeline">']
    parts.extend(render_step(record) for _, record in reader.records())
    for warning in trace.get("warnings") or []:
        parts.append(f'<div class="ds-warning">warning: {_esc(warning)}</div>')
    final = reader.final
    if final:
        if final.get("audio") is None:
            outcome = "no soundtrack: what was left after removing the voice was silent (rm)"
        else:
            outcome = f"final soundtrack: {final.get('duration')} s at {final.get('sample_rate')} Hz"
            if final.get("fallback"):
                outcome += f" (fallback {final['fallback']})"
        loads = final.get("model_load_seconds") or {}
        load_text = ", ".join(f"{k} {v:.1f} s" for k, v in loads.items() if v)
        parts.append(
            f'<div class="ds-final"><b>Result</b>: {_esc(outcome)} · run {float(trace.get("seconds", 0)):.1f} s'
            + (f" · model loads {_esc(load_text)}" if load_text else "")
            + "</div>"
        )
    if trace.get("error"):
        parts.append(f'<div class="ds-error">{_esc(trace["error"])}</div>')
    parts.append("</div>")
    return "".join(parts)


@dataclass
class LiveStatus:
    """What a running job has told so far: the steps seen, their state and progress."""

    steps: dict[str, dict[str, Any]] = field(default_factory=dict)
    queued: bool = True

    def update(self, event: ProgressEvent) -> None:
        self.queued = False
        entry = self.steps.setdefault(event.step, {"state": "running", "fraction": None, "message": ""})
        if event.status == "start":
            entry.update(state="running", component=event.component)
        elif event.status == "progress":
            entry["fraction"] = event.fraction
            entry["message"] = event.message
        else:
            entry["state"] = "done"
            entry["fraction"] = 1.0 if entry["fraction"] is not None else None
            if event.record:
                entry["seconds"] = event.record.get("seconds")
                entry["decision"] = decision_sentence(
                    event.step, event.record.get("decision"), event.record.get("evidence")
                )

    def html(self, headline: str = "") -> str:
        parts = ['<div class="ds-live">']
        if headline:
            parts.append(f'<div class="ds-headline">{_esc(headline)}</div>')
        elif self.queued:
            parts.append('<div class="ds-headline">waiting for the models (queued)…</div>')
        else:
            parts.append('<div class="ds-headline">running…</div>')
        for step, entry in self.steps.items():
            state = entry["state"]
            icon = "✔" if state == "done" else "▶"
            line = f"{icon} {step_title(step)}"
            if state == "running":
                line += " — running…"
            else:
                line += f" — {entry.get('decision', '')}"
                if entry.get("seconds") is not None:
                    line += f" ({float(entry['seconds']):.1f} s)"
            parts.append(
                f'<div class="ds-live-step" data-step="{_esc(step)}" data-state="{state}">{_esc(line)}'
            )
            if entry["fraction"] is not None:
                pct = round(100 * float(entry["fraction"]))
                parts.append(
                    f'<div class="ds-bar"><div class="ds-fill" style="width:{pct}%"></div></div>'
                    f'<span class="ds-meta">{_esc(entry["message"])} {pct}%</span>'
                )
            parts.append("</div>")
        parts.append("</div>")
        return "".join(parts)


CSS = """
.ds-step { border: 1px solid #d0d7de; border-radius: 8px; padding: 8px 12px; margin: 6px 0; }
.ds-step-head { font-size: 1.05em; }
.ds-meta { color: #6a737d; font-size: 0.9em; }
.ds-decision { margin: 4px 0; font-weight: 600; color: #0b5394; }
.ds-plan { white-space: pre-wrap; font-size: 0.9em; background: #f6f8fa; padding: 6px; border-radius: 4px; }
.ds-cot { background: #fafaf0; border-left: 3px solid #c9a227; padding: 4px 8px; margin: 4px 0; }
.ds-tag { font-family: monospace; font-size: 0.8em; background: #eee3b5; padding: 0 4px; border-radius: 3px; }
.ds-section { margin: 3px 0; }
.ds-evidence table { font-size: 0.85em; border-collapse: collapse; }
.ds-evidence td { border-bottom: 1px solid #eee; padding: 1px 8px 1px 0; vertical-align: top; }
.ds-warning { color: #8a6d3b; }
.ds-final { margin-top: 8px; padding: 6px 10px; background: #eef7ee; border-radius: 6px; }
.ds-error, .ds-message-error { color: #b00020; font-weight: 600; }
.ds-message-ok { color: #1a7f37; font-weight: 600; }
.ds-live-step { margin: 3px 0; }
.ds-bar { display: inline-block; width: 220px; height: 10px; background: #e6e6e6; border-radius: 5px;
  margin: 0 8px; vertical-align: middle; overflow: hidden; }
.ds-fill { height: 100%; background: #2f81f7; }
.ds-headline { font-weight: 600; margin-bottom: 4px; }
"""
