"""The web page's parts without a browser: timeline rendering, session folders, input checks, shared models."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from media_factory import make_audio_file, make_video, tone, truncate_file
from typer.testing import CliRunner

from deepsound.config import PipelineConfig
from deepsound.errors import ConfigError, MediaError
from deepsound.pipeline import Pipeline
from deepsound.progress import ProgressEvent
from deepsound.registry import Components
from deepsound.ui.jobs import Job, check_media, check_video, page_message
from deepsound.ui.models import PipelineFamily
from deepsound.ui.sessions import SessionStore
from deepsound.ui.timeline import LiveStatus, render_step, render_trace

COT = (
    "<SUMMARY>A street at night.</SUMMARY><CAPTION>Cars pass; a man talks over them.</CAPTION>"
    "<REASONING>A voice <b>narrates</b> what is seen.</REASONING><CONCLUSION>A. Yes</CONCLUSION>"
)


def _judge_record(answer: str = COT) -> dict:
    return {
        "step": "step2_judge_voice_over",
        "component": "mllm",
        "seconds": 1.25,
        "decision": {"has_voice_over": True, "judge_said": True},
        "evidence": {"speech_ratio": 0.4, "cot_text": answer, "decided_by": "mllm"},
        "mllm_calls": [{"prompt": "Does the audio contain voice-over?", "answer": answer}],
        "outputs": {},
    }


def test_step_card_shows_decision_evidence_and_each_reasoning_section_escaped():
    html = render_step(_judge_record())
    assert "Step 2" in html and "voice-over found" in html and "1.25 s" in html
    for tag, text in (
        ("SUMMARY", "A street at night."),
        ("CAPTION", "a man talks"),
        ("CONCLUSION", "A. Yes"),
    ):
        assert f'<span class="ds-tag">{tag}</span>' in html and text in html
    assert "&lt;b&gt;narrates&lt;/b&gt;" in html and "<b>narrates</b>" not in html  # model text is escaped
    assert "speech_ratio" in html and "decided_by" in html
    assert "cot_text" not in html  # shown as sections, not as a raw cell


def test_untagged_answer_is_shown_raw_and_undecided_is_said():
    record = _judge_record("maybe, hard to say")
    record["decision"] = {"has_voice_over": False, "judge_said": None}
    html = render_step(record)
    assert "ANSWER" in html and "maybe, hard to say" in html
    assert "could not decide" in html


def test_trace_timeline_has_one_card_per_step_in_order_and_the_outcome():
    trace = {
        "steps": [
            {
                "step": "step0_plan",
                "decision": ["generate", "detect_voice_over"],
                "evidence": {"plan_text": "Step1"},
            },
            {
                "step": "step1_generate",
                "decision": "generated",
                "evidence": {"duration": 2.0, "sample_rate": 44100},
            },
            _judge_record(),
            {
                "step": "step4_check_silence",
                "decision": {"is_silent": True},
                "evidence": {"silent_frame_ratio": 0.97},
            },
            {"step": "postprocess_rm", "decision": "audio removed"},
        ],
        "warnings": ["judge undecided"],
        "final": {"audio": None, "fallback": "rm"},
        "seconds": 3.5,
    }
    html = render_trace(trace)
    order = [html.index(f'data-step="{s["step"]}"') for s in trace["steps"]]
    assert order == sorted(order)
    assert "generated 2.00 s of audio at 44100 Hz" in html
    assert "97% of frames are silent" in html
    assert "no soundtrack" in html and "warning: judge undecided" in html


def test_live_status_tracks_steps_and_fractions():
    live = LiveStatus()
    assert "queued" in live.html()
    live.update(ProgressEvent("a.mp4", "step1_generate", "start", 0.0, component="mmaudio"))
    live.update(ProgressEvent("a.mp4", "step1_generate", "progress", 0.4, message="sampling"))
    html = live.html()
    assert 'data-state="running"' in html and "width:40%" in html and "sampling 40%" in html
    record = {"seconds": 2.0, "decision": "generated", "evidence": {"duration": 1.0, "sample_rate": 16000}}
    live.update(ProgressEvent("a.mp4", "step1_generate", "end", 1.0, record=record))
    html = live.html()
    assert 'data-state="done"' in html and "width:100%" in html and "(2.0 s)" in html


def test_session_folders_are_fresh_per_run_and_removed_at_end_idle_and_close(tmp_path):
    store = SessionStore(tmp_path / "root", ttl_seconds=60)
    first = store.new_run("abc", "clip")
    (first / "clip.wav").write_bytes(b"x")
    second = store.new_run("abc", "clip")
    assert second != first and second.is_dir() and not first.exists()  # only the newest run is kept
    other = store.new_run("../../evil", "x")
    assert other.resolve().is_relative_to(store.sessions_dir.resolve())  # a session id cannot escape
    store.end("abc")
    assert not second.exists() and "abc" not in store.active()
    assert store.sweep(now=time.monotonic()) == []
    assert store.sweep(now=time.monotonic() + 61) == ["evil"]
    assert store.active() == []
    store.new_run("def")
    store.close()
    assert not (tmp_path / "root").exists()


@pytest.fixture(scope="module")
def media(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("media")
    clip = make_video(folder / "clip.mp4", duration=1.0, size=(64, 48))
    text = folder / "notes.mp4"
    text.write_text("not a video at all")
    return {
        "clip": clip,
        "text": text,
        "corrupt": truncate_file(clip, folder / "cut.mp4", keep=0.3),
        "audio": make_audio_file(folder / "song.m4a", tone(1.0)),
        "long": make_video(folder / "long.mp4", duration=3.0, fps=10, size=(64, 48)),
    }


@pytest.mark.parametrize(
    ("kind", "words"),
    [
        ("text", "cannot be read"),
        ("corrupt", "cannot be read"),
        ("audio", "no video stream"),
        ("long", "up to 2 s"),
    ],
)
def test_bad_inputs_fail_in_one_line_that_names_only_the_file(media, kind, words):
    with pytest.raises(MediaError) as caught:
        check_video(media[kind], max_seconds=2.0)
    line = page_message(caught.value, media[kind])
    assert words in line and "\n" not in line
    assert line.startswith(media[kind].name) and str(media[kind].parent) not in line


def test_input_checks_accept_good_media(media):
    assert check_video(media["clip"], max_seconds=2.0).has_video
    assert check_media(media["audio"], max_seconds=2.0, need_audio=True).has_audio
    with pytest.raises(MediaError, match="no audio stream"):
        check_media(media["clip"], None, need_audio=True)


def test_unexpected_errors_are_one_line_too():
    assert (
        page_message(RuntimeError("boom\nstack"))
        == "internal error (RuntimeError): boom; the server log has the details"
    )


def test_job_streams_events_and_hands_back_result_or_error():
    def work(listener):  # noqa: ANN001, ANN202
        listener(ProgressEvent("c", "separate", "start", 0.0))
        listener(ProgressEvent("c", "separate", "progress", 0.5, message="half"))
        return 42

    job = Job(work)
    seen = [s.steps["separate"]["fraction"] for s in job.follow(LiveStatus(), every=0.01)]
    assert seen and seen[-1] == 0.5 and job.result == 42

    def fail(listener):  # noqa: ANN001, ANN202
        raise MediaError("x.mp4: corrupt")

    with pytest.raises(MediaError, match="corrupt"):
        list(Job(fail).follow(LiveStatus(), every=0.01))


def test_choices_share_the_base_pipelines_models():
    config = PipelineConfig(device="cpu", judge="cascade")
    speech, mllm, separator = object(), object(), object()
    base = Pipeline(
        config, Components(config, overrides={"speech": speech, "mllm": mllm, "separator": separator})
    )
    family = PipelineFamily(base)
    assert family.pipeline() is base and family.pipeline("large_44k_v2", "cascade") is base
    other = family.pipeline(judge="speech")
    assert other is family.pipeline(judge="speech") and other.config.judge == "speech"
    assert other.components.separator is separator and other.components.mllm is mllm
    judge = other.components.judge
    assert judge.name == "speech" and judge.detector is speech  # built over the shared detector
    assert other.components.load_seconds is base.components.load_seconds


def test_cli_ui_builds_the_page_from_pipeline_options(monkeypatch):
    pytest.importorskip("gradio", reason="the ui extra (gradio) is not installed")
    from deepsound import cli
    from deepsound.ui.app import WebUI

    seen = {}

    def fake_launch(self, *, block=False):  # noqa: ANN001, ANN202
        seen.update(settings=self.settings, config=self.family.base.config, root=self.store.root)
        self.close()
        return "http://127.0.0.1:0/"

    monkeypatch.setattr(WebUI, "launch", fake_launch)
    args = [
        "ui",
        "--port",
        "7999",
        "--steps",
        "3",
        "--variants",
        "all",
        "--judge",
        "speech",
        "--max-seconds",
        "30",
    ]
    result = CliRunner().invoke(cli.app, args)
    assert result.exit_code == 0, result.output
    s = seen["settings"]
    assert s.port == 7999 and s.defaults.num_steps == 3 and s.max_input_seconds == 30
    assert s.variants[0] == "large_44k_v2" and len(s.variants) == 5
    assert seen["config"].judge == "speech" and not seen["root"].exists()

    bad = CliRunner().invoke(cli.app, ["ui", "--variants", "huge"])
    assert bad.exit_code != 0 and "unknown variant" in bad.output


def test_parse_variants():
    from deepsound.cli.ui import parse_variants

    assert parse_variants("", "small_16k", ("small_16k", "large_44k")) == ("small_16k",)
    assert parse_variants("large_44k", "small_16k", ("small_16k", "large_44k")) == ("small_16k", "large_44k")
    with pytest.raises(ConfigError):
        parse_variants("nope", "small_16k", ("small_16k",))
