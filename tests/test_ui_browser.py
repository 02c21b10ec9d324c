"""The web page in a real browser: headless Chromium drives ``deepsound ui`` over tiny real models.

The page is served on 127.0.0.1 by :class:`deepsound.ui.WebUI` over a pipeline of
tiny real components (MMAudio, BS-RoFormer, Qwen2.5-Omni thinker with random
weights; the real Silero detector and silence rule), configured so that every
step and the ``neg`` fallback run. Playwright drives the system's Chromium
(never a downloaded browser). Screenshots go to ``$DEEPSOUND_UI_SCREENSHOTS``
when set, else to the test's temporary folder.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
from ci_tools import require_tool
from media_factory import make_video, tone, truncate_file

from deepsound.testing import tiny as toy

# .ci/run installs all three (the dev extra and Debian's Chromium): in CI a missing one fails
require_tool("gradio", importlib.util.find_spec("gradio") is not None, "pip install -e '.[dev]'")
require_tool("playwright", importlib.util.find_spec("playwright") is not None, "pip install -e '.[dev]'")
from playwright import sync_api  # noqa: E402

CHROMIUM = os.environ.get("DEEPSOUND_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
require_tool("Chromium", Path(CHROMIUM).exists(), f"no Chromium at {CHROMIUM}: apt-get install chromium")

ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
ALL_STEPS = [
    "step0_plan",
    "step1_generate",
    "step2_judge_voice_over",
    "step3_remove_voice_over",
    "step4_check_silence",
    "postprocess_neg",
]
RUN_TIMEOUT_MS = 90_000


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def page_server():
    from deepsound.config import PipelineConfig, RunOptions, SilenceConfig
    from deepsound.models.silero.detector import SileroSpeechDetector
    from deepsound.pipeline import Pipeline
    from deepsound.registry import Components
    from deepsound.ui import UiSettings, WebUI

    models = {
        "generator": toy.mmaudio_generator(seed=0, mode="16k"),
        "separator": toy.bs_roformer_separator(seed=0),
        "speech": SileroSpeechDetector(),
        "mllm": toy.omni_reasoner(seed=0, max_new_tokens=8),
    }
    # The random MLLM's answers are undecided, taken as voice-over; a silence threshold above any
    # level makes step 4 call the rest silent: so every step and the neg fallback run.
    config = PipelineConfig(
        device="cpu",
        judge="mllm",
        planner="mllm",
        undecided_is_voice_over=True,
        silence=SilenceConfig(threshold_db=60.0),
    )
    settings = UiSettings(
        port=_free_port(), defaults=RunOptions(duration=1.0, num_steps=2), max_input_seconds=5.0
    )
    ui = WebUI(Pipeline(config, Components(config, overrides=models)), settings)
    ui.launch()
    yield ui
    root = ui.store.root
    ui.close()
    assert not root.exists(), "closing the page leaves no files behind"


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("clips")
    street = make_video(folder / "street.mp4", duration=1.5, fps=25, size=(160, 120))
    return {
        "street": street,
        "harbour": make_video(folder / "harbour.mp4", duration=2.5, fps=25, size=(160, 120)),
        "talk": make_video(
            folder / "talk.mp4", duration=1.5, fps=25, size=(160, 120), audio=tone(1.5, 16000)
        ),
        "broken": truncate_file(street, folder / "broken.mp4", keep=0.3),
        "long": make_video(folder / "long.mp4", duration=6.0, fps=10, size=(64, 48)),
    }


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("DEEPSOUND_UI_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _context(browser, url: str):
    """A fresh visitor; records every request that leaves loopback (there must be none)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    outside: list[str] = []

    def check(route) -> None:  # noqa: ANN001
        host = urlparse(route.request.url).hostname
        if route.request.url.startswith(("data:", "blob:")) or host in ("127.0.0.1", "localhost"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", check)
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#ds-run")
    return context, page, outside


def _upload_video(page, path: Path) -> None:
    page.set_input_files("#ds-video-in input[type=file]", str(path))
    page.wait_for_selector("#ds-video-in video", state="attached", timeout=20_000)


def _download(page, selector: str) -> dict[str, bytes]:
    files = {}
    for link in page.query_selector_all(f"{selector} a[href]"):
        href = link.get_attribute("href")
        name = Path(urlparse(href).path).name
        response = page.request.get(href)
        assert response.ok, href
        files[name] = response.body()
    return files


def _wait_playable(page, selector: str) -> float:
    page.wait_for_function(
        f"() => {{ const v = document.querySelector('{selector} video'); return v && v.readyState >= 1 && v.duration > 0; }}",
        timeout=20_000,
    )
    return page.eval_on_selector(f"{selector} video", "v => v.duration")


def test_generate_shows_every_step_and_playable_results(page_server, browser, clips, shots):
    context, page, outside = _context(browser, page_server.url)
    _upload_video(page, clips["street"])
    page.click("#ds-run")
    page.wait_for_selector("#ds-status .ds-live-step", timeout=RUN_TIMEOUT_MS)  # live progress appears
    page.locator("#ds-status").screenshot(path=str(shots / "ui-running.png"))
    page.wait_for_selector("#ds-timeline .ds-final", timeout=RUN_TIMEOUT_MS)
    steps = page.eval_on_selector_all("#ds-timeline .ds-step", "els => els.map(e => e.dataset.step)")
    assert steps == ALL_STEPS
    live = page.eval_on_selector_all("#ds-status .ds-live-step", "els => els.map(e => e.dataset.state)")
    assert live == ["done"] * len(ALL_STEPS)
    assert "sampling 100%" in page.inner_text("#ds-status")  # the sampler's own progress bar
    assert "Done" in page.inner_text("#ds-message")

    duration = _wait_playable(page, "#ds-video-out")
    assert duration == pytest.approx(1.5, abs=0.15)
    for player in ("#ds-step1", "#ds-kept", "#ds-removed", "#ds-neg"):
        assert page.is_visible(player), player
    files = _download(page, "#ds-downloads")
    assert set(files) == {"street.wav", "street.mp4", "street.trace.json"}
    assert all(len(body) > 0 for body in files.values())
    trace = json.loads(files["street.trace.json"])
    assert [s["step"] for s in trace["steps"]] == ALL_STEPS
    page.click("#ds-timeline .ds-step[data-step=step2_judge_voice_over] summary")
    page.screenshot(path=str(shots / "ui-generate.png"), full_page=True)
    assert outside == [], f"the page reached beyond loopback: {outside}"
    context.close()


def test_bad_inputs_give_one_line_and_leave_nothing(page_server, browser, clips, shots):
    context, page, _ = _context(browser, page_server.url)
    before = set(page_server.store.active())
    _upload_video(page, clips["broken"])
    page.click("#ds-run")
    page.wait_for_selector("#ds-message .ds-message-error", timeout=20_000)
    text = page.inner_text("#ds-message").strip()
    assert "broken.mp4" in text and "\n" not in text
    assert str(page_server.store.root) not in text  # no server folders in what the visitor reads
    page.screenshot(path=str(shots / "ui-corrupt.png"), full_page=False)

    page.click("#ds-video-in button[aria-label='Clear']")
    _upload_video(page, clips["long"])
    page.click("#ds-run")
    page.wait_for_function("() => document.querySelector('#ds-message').innerText.includes('long.mp4')")
    assert "up to 5 s" in page.inner_text("#ds-message")
    assert set(page_server.store.active()) == before  # nothing was started, nothing written

    page.click("#ds-video-in button[aria-label='Clear']")
    page.click("button.gallery-item")  # the bundled example loads into the input
    page.wait_for_function(
        "() => (document.querySelector('#ds-video-in video') || {}).src?.includes('bouncing_ball')",
        timeout=20_000,
    )
    context.close()


def test_two_visitors_at_once_get_their_own_results(page_server, browser, clips):
    a = _context(browser, page_server.url)
    b = _context(browser, page_server.url)
    for (_, page, _), clip in ((a, clips["street"]), (b, clips["harbour"])):
        _upload_video(page, clip)
        page.check("label:has-text('Whole video') input")
    a[1].click("#ds-run")
    b[1].click("#ds-run")
    for (_, page, _), clip, seconds in ((a, "street", 1.5), (b, "harbour", 2.5)):
        page.wait_for_selector("#ds-timeline .ds-final", timeout=2 * RUN_TIMEOUT_MS)
        assert _wait_playable(page, "#ds-video-out") == pytest.approx(seconds, abs=0.15)
        files = _download(page, "#ds-downloads")
        assert set(files) == {f"{clip}.wav", f"{clip}.mp4", f"{clip}.trace.json"}
        trace = json.loads(files[f"{clip}.trace.json"])
        assert Path(trace["video"]).name == f"{clip}.mp4"
        assert trace["final"]["duration"] == pytest.approx(seconds, abs=0.05)
    sessions = page_server.store.active()
    a[0].close()
    b[0].close()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and set(page_server.store.active()) & set(sessions):
        time.sleep(0.5)
    assert not set(page_server.store.active()) & set(sessions), "a visitor's files outlive their session"


def test_remove_voice_and_screen_tabs(page_server, browser, clips, shots):
    context, page, outside = _context(browser, page_server.url)
    page.click("button[role=tab]:has-text('Remove voice')")
    page.set_input_files("#ds-sep-in input[type=file]", str(clips["talk"]))
    page.wait_for_function(
        "() => document.querySelector('#ds-sep-in').innerText.includes('talk')", timeout=20_000
    )
    page.click("#ds-sep-run")
    page.wait_for_selector("#ds-sep-message .ds-message-ok", timeout=RUN_TIMEOUT_MS)
    page.screenshot(path=str(shots / "ui-remove-voice.png"), full_page=True)
    files = _download(page, "#ds-sep-files")
    assert {
        "talk.instrumental.wav",
        "talk.vocals.wav",
        "talk.separation.json",
        "talk.instrumental.mp4",
    } == set(files)
    assert all(len(body) > 0 for body in files.values())

    page.click("button[role=tab]:has-text('Screen')")
    page.set_input_files("#ds-screen-in input[type=file]", [str(clips["talk"]), str(clips["broken"])])
    page.wait_for_function(
        "() => ['talk', 'broken'].every(n => document.querySelector('#ds-screen-in').innerText.includes(n))",
        timeout=20_000,
    )
    page.click("#ds-screen-run")
    page.wait_for_selector("#ds-screen-message .ds-message-error", timeout=RUN_TIMEOUT_MS)  # 1 unreadable
    table = page.inner_text("#ds-screen-table")
    assert "talk.mp4" in table and "broken.mp4" in table and "corrupt or truncated" in table
    page.screenshot(path=str(shots / "ui-screen.png"), full_page=True)
    assert outside == []
    context.close()
