"""Batch lists: a broken CSV line is an error naming its line; missing weights stop the batch at once."""

from __future__ import annotations

import json

import pytest
from media_factory import make_video
from stand_ins import FixedPlanner, ScalingSeparator, ScriptedJudge, tone

from deepsound.batch import read_inputs, run_batch
from deepsound.config import PipelineConfig, RunOptions
from deepsound.errors import ConfigError, WeightsError
from deepsound.pipeline import Pipeline
from deepsound.registry import Components


def _csv(tmp_path, text: str):
    path = tmp_path / "list.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_an_unterminated_quote_names_its_line(tmp_path):
    source = _csv(tmp_path, 'path,prompt\na.mp4,rain\nb.mp4,"thunder\nc.mp4,wind\nd.mp4,birds\n')
    with pytest.raises(ConfigError, match=r"line 3: a double quote is opened and not closed"):
        read_inputs(source)


def test_extra_columns_name_their_line(tmp_path):
    source = _csv(tmp_path, "a.mp4,rain\nb.mp4,rain, thunder\n")
    with pytest.raises(ConfigError, match=r"line 2: 3 columns, expected path\[,prompt\]"):
        read_inputs(source)


def test_quoted_prompts_with_commas_and_empty_trailing_cells_are_fine(tmp_path):
    source = _csv(tmp_path, 'a.mp4,"rain, thunder"\nb.mp4,,\n')
    items = read_inputs(source)
    assert [(i.video.name, i.prompt) for i in items] == [("a.mp4", "rain, thunder"), ("b.mp4", None)]


class MissingWeightsGenerator:
    """Fails as a generator does when its weight file is not there (offline)."""

    name = "missing-weights"

    def __init__(self) -> None:
        self.calls = 0

    def generate(self, request):
        self.calls += 1
        raise WeightsError("1 weight file missing (0.63 GB) and downloads are off (--offline):")


def test_missing_weights_stop_the_batch_at_the_first_clip(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    for name in ("a", "b", "c"):
        make_video(folder / f"{name}.mp4", duration=1.2, fps=25, size=(64, 48), audio=tone(1.2, 44100))
    generator = MissingWeightsGenerator()
    cfg = PipelineConfig()
    parts = {
        "generator": generator,
        "judge": ScriptedJudge(False),
        "separator": ScalingSeparator(0.5),
        "planner": FixedPlanner(),
    }
    pipeline = Pipeline(cfg, Components(cfg, parts))
    with pytest.raises(WeightsError, match=r"batch stopped at a.mp4 \(1 of 3\), as every clip needs"):
        run_batch(pipeline, read_inputs(folder), tmp_path / "out", RunOptions(duration=1.0))
    assert generator.calls == 1
    summary = json.loads((tmp_path / "out" / "batch_summary.json").read_text())
    assert summary["failed"] == 1 and summary["complete"] is False
    assert "stops_batch" not in summary["items"][0]
