"""The web page over the pipeline: :class:`WebUI` builds it, serves it and cleans up after it.

``WebUI(pipeline, settings)`` takes a ready :class:`~deepsound.pipeline.Pipeline`
(the CLI's, built from the registry; a test's, over tiny real models), so the
page runs the very step loop and progress events the command line does.
gradio provides the page, its upload handling and its queue: runs share the
process's models and take turns (``concurrency`` at a time, one by default),
and every visitor's state lives in their own session.

Privacy and tidiness: analytics are off before gradio is imported, no public
link is made unless ``share`` is asked for, and all files (uploads, gradio's
cache, each run's outputs) live under one private temporary root that is
swept while serving and removed on :meth:`WebUI.close`.
"""

# No postponed annotations here: gradio reads the ``gr.Request`` annotation of handlers at run time.

import contextlib
import logging
import os
import signal
from pathlib import Path

import gradio as gr

from deepsound.pipeline import Pipeline
from deepsound.ui.missing import banner_markdown, missing_offline
from deepsound.ui.models import PipelineFamily
from deepsound.ui.sessions import SessionStore
from deepsound.ui.settings import UiSettings
from deepsound.weights.resolve import offline_reason

log = logging.getLogger(__name__)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class _GradioFolder:
    """Point gradio's upload and cache folder at ``folder`` while a page serves, then put it back.

    gradio reads ``GRADIO_TEMP_DIR`` whenever it makes a component, starts its
    server and checks an upload, so the setting holds for the page's whole life
    (one page per process).
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._before = os.environ.get("GRADIO_TEMP_DIR")
        os.environ["GRADIO_TEMP_DIR"] = str(folder)

    def restore(self) -> None:
        if os.environ.get("GRADIO_TEMP_DIR") != str(self.folder):
            return
        if self._before is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = self._before


class WebUI:
    """The DeepSound page for one pipeline: Generate, Remove voice and Screen tabs."""

    def __init__(
        self, pipeline: Pipeline, settings: UiSettings | None = None, *, example: bool = True
    ) -> None:
        import deepsound.ui.generate_tab as generate_tab
        import deepsound.ui.tool_tabs as tool_tabs
        from deepsound.ui.example import write_example

        self.settings = settings or UiSettings()
        self.family = PipelineFamily(pipeline)
        self.missing = missing_offline(pipeline)
        self.banner = banner_markdown(self.missing, offline_reason(pipeline.config.offline) or "offline")
        self.store = SessionStore(ttl_seconds=self.settings.session_ttl_seconds)
        self.gradio_dir = self.store.root / "gradio"
        self.gradio_dir.mkdir()
        self.example = write_example(self.store.root / "examples") if example else None
        self.url: str | None = None
        ttl = int(self.settings.session_ttl_seconds)
        self._gradio_folder = _GradioFolder(self.gradio_dir)
        with gr.Blocks(
            title="DeepSound", analytics_enabled=False, delete_cache=(max(1, min(600, ttl // 4)), ttl)
        ) as blocks:
            gr.Markdown(f"# {self.settings.title}")
            if self.missing:  # served offline without some weights: say which, once, at the top
                gr.Markdown(self.banner, elem_id="ds-missing", elem_classes=["ds-missing"])
            with gr.Tabs():
                with gr.Tab("Generate", id="generate"):
                    generate_tab.build(self)
                with gr.Tab("Remove voice", id="separate"):
                    tool_tabs.build_separate(self)
                with gr.Tab("Screen for voice-over", id="screen"):
                    tool_tabs.build_screen(self)
            blocks.unload(self._session_ended)
        blocks.queue(default_concurrency_limit=self.settings.concurrency, max_size=self.settings.max_queue)
        self.blocks = blocks

    def _session_ended(self, request: gr.Request) -> None:
        if request is not None and request.session_hash:
            self.store.end(request.session_hash)

    def launch(self, *, block: bool = False) -> str:
        """Start serving; returns the local address. With ``block`` it serves until interrupted, then closes."""
        from deepsound.ui.timeline import CSS

        s = self.settings
        _, url, share_url = self.blocks.launch(
            server_name=s.host, server_port=s.port, share=s.share, prevent_thread_lock=True,
            quiet=True, show_error=False, allowed_paths=[str(self.store.root)],
            max_file_size=f"{s.max_upload_mb}mb", css=CSS, inbrowser=False, ssr_mode=False,
        )  # fmt: skip
        self.store.start_sweeper()
        self.url = url
        log.info(
            "DeepSound page at %s%s (Ctrl-C stops it)", url, f", public link {share_url}" if share_url else ""
        )
        if block:
            previous = signal.signal(signal.SIGTERM, _interrupt)  # a service manager's stop cleans up too
            try:
                self.blocks.block_thread()
            finally:
                signal.signal(signal.SIGTERM, previous)
                self.close()
        return url

    def close(self) -> None:
        """Stop serving and remove every file the page held."""
        with contextlib.suppress(Exception):
            self.blocks.close()
        self.store.close()
        self._gradio_folder.restore()
