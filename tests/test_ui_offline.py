"""``deepsound ui --offline`` without weights: the page serves, lists what is missing, and the tabs
that need nothing missing work."""

from __future__ import annotations

from pathlib import Path

import pytest
from media_factory import make_video, tone
from typer.testing import CliRunner

from deepsound.testing import tiny as toy

gr = pytest.importorskip("gradio", reason="the ui extra (gradio) is not installed")

from deepsound import cli  # noqa: E402
from deepsound.config import PipelineConfig  # noqa: E402
from deepsound.errors import WeightsError  # noqa: E402
from deepsound.pipeline import Pipeline  # noqa: E402
from deepsound.registry import Components  # noqa: E402
from deepsound.ui import WebUI  # noqa: E402
from deepsound.ui.jobs import page_message  # noqa: E402
from deepsound.weights.requirements import missing_message  # noqa: E402


@pytest.fixture()
def no_weights(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPSOUND_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("DEEPSOUND_OFFLINE", raising=False)
    (tmp_path / "weights").mkdir()
    return tmp_path / "weights"


def test_ui_offline_serves_and_lists_the_missing_files(no_weights, monkeypatch):
    served: list[WebUI] = []

    def launch(self, *, block=False):  # noqa: ANN001, ANN202
        served.append(self)
        return "http://127.0.0.1:0/"

    monkeypatch.setattr(WebUI, "launch", launch)
    result = CliRunner().invoke(
        cli.app, ["ui", "--offline", "--weights-dir", str(no_weights), "--variant", "small_16k", "-q"]
    )
    assert result.exit_code == 0, result.output
    page = served[0]
    try:
        banner = page.banner
        assert banner.startswith("**7 weight files missing**") and "downloads are off: --offline" in banner
        assert "- `weights/mmaudio_small_16k.pth` (0.63 GB)" in banner
        assert "- and 1 more" in banner  # a short list: six by name, the rest counted
        assert "`deepsound weights download mmaudio_small_16k vae_16k" in banner
        assert "://" not in banner
        shown = [b for b in page.blocks.blocks.values() if getattr(b, "elem_id", None) == "ds-missing"]
        assert shown and shown[0].value == banner
    finally:
        page.close()


def _handler(page: WebUI, where: str):
    return next(f.fn for f in page.blocks.fns.values() if where in f.fn.__qualname__)


def test_remove_voice_and_screen_work_without_the_generators_weights(no_weights, tmp_path):
    config = PipelineConfig(device="cpu", offline=True, weights_dir=no_weights)
    pipeline = Pipeline(
        config, Components(config, overrides={"separator": toy.bs_roformer_separator(seed=0)})
    )
    page = WebUI(pipeline, example=False)
    try:
        assert any("mmaudio" in e.name for e in page.missing)
        clip = make_video(tmp_path / "talk.mp4", duration=1.0, fps=25, size=(64, 48), audio=tone(1.0, 44100))
        updates = list(_handler(page, "build_separate")(str(clip), None))
        final = {getattr(k, "elem_id", None): v for k, v in updates[-1].items()}
        assert "Done." in final["ds-sep-message"]
        assert Path(final["ds-sep-kept"]).is_file() and Path(final["ds-sep-removed"]).is_file()
        # Screen with the speech judge: the speech detector ships with its package, no weight file
        updates = list(_handler(page, "build_screen")([str(clip)], "speech", None))
        final = {getattr(k, "elem_id", None): v for k, v in updates[-1].items()}
        assert "1 judged" in final["ds-screen-message"], final
    finally:
        page.close()


def test_the_in_page_error_for_missing_weights_is_short(no_weights):
    config = PipelineConfig(offline=True, weights_dir=no_weights)
    missing = Pipeline(config).components.missing_files()
    error = WeightsError(missing_message(missing, no_weights, offline="--offline"))
    text = page_message(error)
    assert "weight files missing" in text
    assert len(text) < 300 and "://" not in text and "\n" not in text
    assert "weights/mmaudio_large_44k_v2.pth" in text and "and " in text
