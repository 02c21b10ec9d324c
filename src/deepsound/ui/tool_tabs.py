"""The Remove voice tab (step 3 on footage a visitor already has) and the Screen tab (step 2 on many videos).

Both call the same functions as ``deepsound separate`` and ``deepsound judge``,
with the page's one separator and judges.
"""

# No postponed annotations here: gradio reads the ``gr.Request`` annotation of handlers at run time.

import json
import logging
from pathlib import Path
from typing import Any

import gradio as gr

from deepsound import progress
from deepsound.errors import DeepSoundError, MediaError
from deepsound.files import atomic_output
from deepsound.progress import ProgressEvent
from deepsound.ui.generate_tab import message_html
from deepsound.ui.jobs import Job, check_media, page_message
from deepsound.ui.timeline import LiveStatus
from deepsound.usecases.judge import judge_file
from deepsound.usecases.separate import separate_file

log = logging.getLogger(__name__)

SCREEN_COLUMNS = ["file", "voice-over", "decided by", "speech ratio", "seconds", "MLLM conclusion / problem"]
_SCREEN_WIDTHS = ["16%", "10%", "12%", "10%", "8%", "44%"]


def build_separate(ui: Any) -> None:
    gr.Markdown("Take the voice out of footage you already have: you get what is **kept** (everything but "
                "the voice), what was **removed** (the voice), and for a video the video with the kept audio.")  # fmt: skip
    with gr.Row():
        with gr.Column():
            media_in = gr.File(label="Audio or video file", elem_id="ds-sep-in")
            run = gr.Button("Remove voice", variant="primary", elem_id="ds-sep-run")
        with gr.Column():
            status = gr.HTML(elem_id="ds-sep-status")
            message = gr.HTML(elem_id="ds-sep-message")
            kept = gr.Audio(
                label="Kept (voice removed)", type="filepath", interactive=False, elem_id="ds-sep-kept"
            )
            removed = gr.Audio(
                label="Removed (the voice)", type="filepath", interactive=False, elem_id="ds-sep-removed"
            )
            video_out = gr.Video(label="Video with the kept audio", interactive=False, visible=False)
            downloads = gr.File(
                label="Downloads", file_count="multiple", interactive=False, elem_id="ds-sep-files"
            )

    def on_run(file, request: gr.Request):  # noqa: ANN001
        blank = {kept: None, removed: None, video_out: gr.update(value=None, visible=False), downloads: None}
        if not file:
            yield {**blank, status: "", message: message_html("Upload an audio or video file first.")}
            return
        path = Path(file)
        try:
            check_media(path, ui.settings.max_input_seconds, need_audio=True)
        except DeepSoundError as exc:
            yield {**blank, status: "", message: message_html(page_message(exc, path))}
            return
        run_dir = ui.store.new_run(request.session_hash if request else "", f"separate-{path.stem}")
        live = LiveStatus()
        yield {**blank, status: live.html(), message: ""}

        def work(listener: Any) -> dict[str, Path]:
            with progress.listening(listener), progress.in_step(path.name, "separate"):
                listener(
                    ProgressEvent(path.name, "separate", "start", 0.0, component=ui.family.separator.name)
                )
                paths = separate_file(ui.family.separator, path, run_dir)
                listener(ProgressEvent(path.name, "separate", "end", 1.0, record={"decision": "separated"}))
            return paths

        job = Job(work)
        try:
            for snapshot in job.follow(live):
                yield {status: snapshot.html()}
        except Exception as exc:  # noqa: BLE001
            if not isinstance(exc, DeepSoundError):
                log.exception("separating %s failed", path.name)
            ui.store.discard(run_dir)
            yield {status: live.html("stopped"), message: message_html(page_message(exc, path, run_dir))}
            return
        paths = job.result
        evidence = json.loads(paths["evidence"].read_text())["evidence"]
        share = evidence.get("vocals_energy_share")
        note = "Done." + (
            f" The voice held {100 * share:.0f}% of the energy." if isinstance(share, float) else ""
        )
        yield {
            status: live.html("finished"),
            message: message_html(note, ok=True),
            kept: str(paths["instrumental"]),
            removed: str(paths["vocals"]),
            video_out: gr.update(value=str(paths["video"]), visible=True)
            if "video" in paths
            else gr.update(),
            downloads: [str(p) for p in paths.values()],
        }

    run.click(on_run, inputs=[media_in], outputs=[status, message, kept, removed, video_out, downloads],
              concurrency_id="models", show_progress="minimal")  # fmt: skip


def screen_row(name: str, row: dict[str, Any]) -> list[Any]:
    """One table row of a ``judge_file`` result (or of its error)."""
    if "error" in row:
        return [name, "error", "", "", "", row["error"]]
    verdict = row.get("has_voice_over")
    word = "undecided" if verdict is None else ("yes" if verdict else "no")
    evidence = row.get("evidence") or {}
    ratio = evidence.get("speech_ratio")
    conclusion = (evidence.get("cot_sections") or {}).get("conclusion", "")
    return [name, word, evidence.get("decided_by", row.get("judge", "")),
            "" if ratio is None else f"{ratio:.2f}", row.get("seconds", ""), conclusion]  # fmt: skip


def build_screen(ui: Any) -> None:
    gr.Markdown("Sort a collection before generating for it: does each video's **own** soundtrack hold a "
                "voice-over? One row per file.")  # fmt: skip
    with gr.Row():
        with gr.Column():
            files_in = gr.File(label="Videos", file_count="multiple", elem_id="ds-screen-in")
            judge = gr.Dropdown(list(ui.settings.judges), value=ui.family.base.config.judge, label="Judge")
            run = gr.Button("Screen", variant="primary", elem_id="ds-screen-run")
        with gr.Column():
            status = gr.HTML(elem_id="ds-screen-status")
            message = gr.HTML(elem_id="ds-screen-message")
    table = gr.Dataframe(headers=SCREEN_COLUMNS, interactive=False, wrap=True, elem_id="ds-screen-table",
                         column_widths=_SCREEN_WIDTHS)  # fmt: skip
    download = gr.File(label="Verdicts (JSON lines)", interactive=False)

    def on_run(files, judge_v, request: gr.Request):  # noqa: ANN001
        if not files:
            yield {
                status: "",
                message: message_html("Upload one or more videos first."),
                table: None,
                download: None,
            }
            return
        paths = [Path(f) for f in files]
        if judge_v not in ui.settings.judges:
            yield {
                status: "",
                message: message_html(f"unknown judge {judge_v!r}"),
                table: None,
                download: None,
            }
            return
        judge_obj = ui.family.judge(judge_v)
        run_dir = ui.store.new_run(request.session_hash if request else "", "screen")
        live = LiveStatus()
        yield {status: live.html(), message: "", table: None, download: None}

        def work(listener: Any) -> list[dict[str, Any]]:
            rows = []
            listener(ProgressEvent("screen", "screen", "start", 0.0, component=judge_obj.name))
            for i, path in enumerate(paths):
                listener(
                    ProgressEvent(
                        "screen",
                        "screen",
                        "progress",
                        i / len(paths),
                        message=f"{i + 1}/{len(paths)}: {path.name}",
                    )
                )
                try:
                    check_media(path, ui.settings.max_input_seconds)
                    row = judge_file(judge_obj, path)
                except MediaError as exc:  # one bad file is one row; the others go on
                    row = {"video": str(path), "error": page_message(exc, path)}
                rows.append(row)
            listener(
                ProgressEvent(
                    "screen", "screen", "end", 1.0, record={"decision": f"{len(rows)} file(s) judged"}
                )
            )
            return rows

        job = Job(work)
        try:
            for snapshot in job.follow(live):
                yield {status: snapshot.html()}
        except Exception as exc:  # noqa: BLE001
            if not isinstance(exc, DeepSoundError):
                log.exception("screening failed")
            ui.store.discard(run_dir)
            yield {status: live.html("stopped"), message: message_html(page_message(exc, *paths))}
            return
        rows = job.result
        out = run_dir / "verdicts.jsonl"
        with atomic_output(out) as tmp:
            tmp.write_text("".join(json.dumps({**r, "video": Path(r["video"]).name}, default=str) + "\n"
                                   for r in rows), encoding="utf-8")  # fmt: skip
        failed = sum("error" in r for r in rows)
        note = f"{len(rows) - failed} judged" + (f", {failed} could not be read" if failed else "")
        yield {
            status: live.html("finished"),
            message: message_html(note, ok=not failed),
            table: [screen_row(p.name, r) for p, r in zip(paths, rows, strict=True)],
            download: str(out),
        }

    run.click(on_run, inputs=[files_in, judge], outputs=[status, message, table, download],
              concurrency_id="models", show_progress="minimal")  # fmt: skip
