"""The Generate tab: a video in, the four steps watched live, every intermediate to hear and download."""

# No postponed annotations here: gradio reads the ``gr.Request`` annotation of handlers at run time.

import logging
from pathlib import Path
from typing import Any

import gradio as gr

from deepsound.config import MODES, POSTPROCESS
from deepsound.errors import ConfigError, DeepSoundError
from deepsound.interfaces import DEFAULT_DURATION, Step
from deepsound.registry import entries
from deepsound.trace import TraceReader, TraceStep
from deepsound.ui.jobs import Job, check_video, page_message
from deepsound.ui.models import generator_controls
from deepsound.ui.timeline import LiveStatus, render_trace

log = logging.getLogger(__name__)

INTRO = """Drop a silent video (or pick the example). **Step 1** generates a soundtrack for it;
**step 2** asks whether that soundtrack holds a voice-over; **step 3** removes the voice (BS-RoFormer);
**step 4** checks whether anything is left, and if not a **fallback** runs (`rm` removes the audio,
`rep` keeps the step-1 audio, `neg` regenerates while steering away from voices). Each step's decision
and evidence appear below as it runs."""


def message_html(text: str, ok: bool = False) -> str:
    import html

    kind = "ok" if ok else "error"
    return f'<div class="ds-message-{kind}" role="alert">{html.escape(text)}</div>' if text else ""


def build(ui: Any) -> None:
    """Lay out the tab inside the open Blocks and wire its Run button to ``ui``'s pipeline family."""
    s = ui.settings
    d = s.defaults
    base = ui.family.base.config
    # the generator and its settings with choices (MMAudio's variant), derived from the registry
    generators = [(e.label, e.name) for e in entries("generator")]
    controls = generator_controls(base, s.variants)
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=1):
            video_in = gr.Video(label="Your video", sources=["upload"], elem_id="ds-video-in")
            if ui.example is not None:
                gr.Examples([[str(ui.example)]], inputs=[video_in], label="Example (a synthetic clip)")
            prompt = gr.Textbox(label="Prompt (optional): what should it sound like?", value=d.prompt)
            negative = gr.Textbox(label="Negative prompt (optional): what to avoid", value=d.negative_prompt)
            with gr.Row():
                duration = gr.Number(
                    label="Seconds of audio", value=d.duration or DEFAULT_DURATION, minimum=0.1
                )
                whole = gr.Checkbox(label="Whole video", value=d.duration is None)
            with gr.Accordion("More options", open=False):
                generator = gr.Dropdown(generators, value=base.generator.name, label="Generator",
                                        elem_id="ds-generator")  # fmt: skip
                choices = [
                    gr.Dropdown(list(c.choices), value=c.value, label=c.label, elem_id=f"ds-{c.generator}-{c.field}",
                                visible=c.generator == base.generator.name)
                    for c in controls
                ]  # fmt: skip
                judge = gr.Dropdown(
                    list(s.judges), value=ui.family.base.config.judge, label="Voice-over judge"
                )
                mode = gr.Radio(
                    list(MODES), value=d.mode, label="Mode: s3 stops after removal, s4 checks silence"
                )
                fallback = gr.Radio(list(POSTPROCESS), value=d.postprocess, label="Fallback when silent")
                with gr.Row():
                    seed = gr.Number(label="Seed", value=d.seed, precision=0)
                    steps = gr.Number(label="Sampling steps", value=d.num_steps, precision=0, minimum=1)
                    cfg = gr.Number(label="Guidance (CFG)", value=d.cfg_strength)
            run = gr.Button("Run", variant="primary", elem_id="ds-run")
        with gr.Column(scale=1):
            status = gr.HTML(elem_id="ds-status")
            message = gr.HTML(elem_id="ds-message")
            video_out = gr.Video(
                label="Your video with its new soundtrack", interactive=False, elem_id="ds-video-out"
            )
            downloads = gr.File(label="Downloads (wav, mp4, trace)", file_count="multiple", interactive=False,
                                elem_id="ds-downloads")  # fmt: skip
    with gr.Row():
        step1 = gr.Audio(
            label="Step 1: generated audio",
            type="filepath",
            interactive=False,
            elem_id="ds-step1",
            visible=False,
        )
        kept = gr.Audio(
            label="Step 3: kept (voice removed)",
            type="filepath",
            interactive=False,
            elem_id="ds-kept",
            visible=False,
        )
        removed = gr.Audio(label="Step 3: removed (the voice)", type="filepath", interactive=False,
                           elem_id="ds-removed", visible=False)  # fmt: skip
        neg = gr.Audio(
            label="Fallback neg: regenerated",
            type="filepath",
            interactive=False,
            elem_id="ds-neg",
            visible=False,
        )
    gr.Markdown("### What each step decided, and why")
    timeline = gr.HTML(elem_id="ds-timeline")
    players = (step1, kept, removed, neg)

    def clear() -> dict:
        return {video_out: None, downloads: None, timeline: "", message: "", status: "",
                **{p: gr.update(value=None, visible=False) for p in players}}  # fmt: skip

    # the request comes first: the generators' choice controls vary in number and close the list
    def on_run(request: gr.Request, video, generator_v, judge_v, mode_v, fallback_v, prompt_v, negative_v,  # noqa: ANN001
               duration_v, whole_v, seed_v, steps_v, cfg_v, *choice_values):  # fmt: skip
        if not video:
            yield {**clear(), message: message_html("Upload a video first, or pick the example.")}
            return
        path = Path(video)
        try:
            check_video(path, s.max_input_seconds)
            options = d.replace(
                prompt=prompt_v or "", negative_prompt=negative_v or "", mode=mode_v, postprocess=fallback_v,
                duration=None if whole_v else float(duration_v or d.duration or DEFAULT_DURATION),
                seed=int(seed_v if seed_v is not None else d.seed),
                num_steps=int(steps_v or d.num_steps), cfg_strength=float(cfg_v if cfg_v is not None else d.cfg_strength),
                write_video=True, keep_intermediates=True,
            )  # fmt: skip
            chosen = {
                c.field: v for c, v in zip(controls, choice_values, strict=True) if c.generator == generator_v
            }
            offered = {c.field: c.choices for c in controls if c.generator == generator_v}
            if (
                generator_v not in {name for _, name in generators}
                or judge_v not in s.judges
                or any(v not in offered[k] for k, v in chosen.items())
            ):  # the API can send anything
                raise ConfigError(
                    f"this page offers generators {', '.join(n for _, n in generators)}, "
                    f"judges {', '.join(s.judges)} and "
                    + "; ".join(f"{c.label}: {', '.join(c.choices)}" for c in controls)
                )
            pipeline = ui.family.pipeline(judge=judge_v, generator=generator_v, settings=chosen)
        except DeepSoundError as exc:
            yield {**clear(), message: message_html(page_message(exc, path))}
            return
        run_dir = ui.store.new_run(request.session_hash if request else "", path.stem)
        live = LiveStatus()
        yield {**clear(), status: live.html()}
        job = Job(lambda listener: pipeline.run(path, run_dir, options, progress=listener))
        try:
            for snapshot in job.follow(live):
                yield {status: snapshot.html()}
        except Exception as exc:  # noqa: BLE001 - one line on the page; the server keeps serving
            if not isinstance(exc, DeepSoundError):
                log.exception("run on %s failed", path.name)
            ui.store.discard(run_dir)
            yield {status: live.html("stopped"), message: message_html(page_message(exc, path, run_dir))}
            return
        yield _results(job.result, live)

    def _results(result: Any, live: LiveStatus) -> dict:
        trace = TraceReader.of(result.trace)
        made = (
            trace.output(Step.GENERATE, "audio"),
            trace.output(Step.REMOVE_VOICE_OVER, "instrumental"),
            trace.output(Step.REMOVE_VOICE_OVER, "vocals"),
            trace.output(TraceStep.FALLBACK_NEG, "audio"),
        )
        sources = tuple(str(path) if path is not None else None for path in made)
        files = [str(result.outputs[k]) for k in ("audio", "video", "trace") if k in result.outputs]
        note = (
            "Done." if result.audio is not None else "Done: the soundtrack was removed (nothing but voice)."
        )
        return {
            status: live.html("finished"),
            message: message_html(note, ok=True),
            video_out: str(result.outputs["video"]) if "video" in result.outputs else None,
            downloads: files,
            timeline: render_trace(trace.data),
            **{
                p: gr.update(value=src, visible=src is not None)
                for p, src in zip(players, sources, strict=True)
            },
        }

    def on_generator(name):  # noqa: ANN001, ANN202 - only the chosen generator's choices are shown
        return [gr.update(visible=c.generator == name) for c in controls]

    if choices:
        generator.change(on_generator, inputs=[generator], outputs=choices)

    run.click(
        on_run,
        inputs=[
            video_in,
            generator,
            judge,
            mode,
            fallback,
            prompt,
            negative,
            duration,
            whole,
            seed,
            steps,
            cfg,
            *choices,
        ],
        outputs=[status, message, video_out, downloads, timeline, *players],
        concurrency_id="models",
        show_progress="minimal",
    )
