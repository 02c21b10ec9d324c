"""``deepsound experiment``'s orchestration: one step-1 generation per video serves every setting.

Stand-in components drive the step loop (a tone generator whose pitch says
whether "human voice" was the negative prompt, a judge and a separator
scripted per clip) and the evaluation's feature models are the doubles of
``evaluation_doubles.py``. Checked: which file each setting takes for each
clip, that the generator runs once per video plus once per Direct-neg clip
the s4 run did not already regenerate, the table's rows and relative
improvements, and that a second run generates nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from evaluation_doubles import install
from media_factory import make_audio_file, make_video
from stand_ins import ToneGenerator, tone

from deepsound import media
from deepsound.config import PipelineConfig, RunOptions
from deepsound.evaluation.experiment import LABELS, SETTINGS, run_experiment, write_summary
from deepsound.evaluation.extractors import Settings
from deepsound.evaluation.report import markdown_table, relative_improvement
from deepsound.interfaces import Separation, VoiceOverVerdict
from deepsound.pipeline import Pipeline
from deepsound.registry import Components

# clip0: no voice-over; clip1: voice-over, silent after removal; clip2: voice-over, music remains
VOICE = {"clip0": False, "clip1": True, "clip2": True}


@dataclass
class StemJudge:
    name: str = "by-stem"

    def judge(self, video, audio):  # noqa: ANN001, ANN201
        return VoiceOverVerdict(VOICE[Path(video).stem], self.name)


@dataclass
class QueueSeparator:
    """Keeps 0 (silent) for the first call, half for the next."""

    keeps: list[float] = field(default_factory=lambda: [0.0, 0.5])
    name: str = "queue"

    def separate(self, audio):  # noqa: ANN001, ANN201
        keep = self.keeps.pop(0)
        return Separation(_scaled(audio, keep), _scaled(audio, 1 - keep))


def _scaled(audio, k):  # noqa: ANN001, ANN202
    from deepsound.audio import Audio

    return Audio(audio.waveform * k, audio.sample_rate)


@pytest.fixture()
def setup(tmp_path: Path, monkeypatch):
    install(monkeypatch)
    videos, ref = tmp_path / "videos", tmp_path / "ref"
    videos.mkdir()
    ref.mkdir()
    for i, stem in enumerate(VOICE):
        make_video(videos / f"{stem}.mp4", duration=2.0, fps=25, size=(64, 48))
        make_audio_file(ref / f"{stem}.wav", tone(2.0, freq=300 + 100 * i))
    generator = ToneGenerator()
    cfg = PipelineConfig()
    separator = QueueSeparator()
    pipeline = Pipeline(
        cfg, Components(cfg, {"generator": generator, "judge": StemJudge(), "separator": separator})
    )
    return {
        "videos": videos,
        "ref": ref,
        "out": tmp_path / "exp",
        "pipeline": pipeline,
        "generator": generator,
    }


def _read(path: Path) -> np.ndarray:
    return media.read_audio(path).waveform


def test_every_setting_from_one_generation(setup):
    s = setup
    videos = sorted(s["videos"].glob("*.mp4"))
    result = run_experiment(
        videos, s["ref"], s["out"], s["pipeline"], RunOptions(duration=2.0),
        eval_settings=Settings(duration=2.0), videos_dir=s["videos"],
    )  # fmt: skip
    requests = s["generator"].requests
    # 3 step-1 generations, 1 neg fallback (clip1), and Direct-neg for clip0 and clip2 only
    assert len(requests) == 6
    assert sum("human voice" in r.negative_prompt for r in requests) == 3
    settings = s["out"] / "settings"
    step1 = {stem: _read(s["out"] / "runs" / f"{stem}.step1.wav") for stem in VOICE}
    for stem in VOICE:
        np.testing.assert_array_equal(_read(settings / "direct" / f"{stem}.wav"), step1[stem])
    np.testing.assert_array_equal(_read(settings / "s3" / "clip0.wav"), step1["clip0"])
    assert np.abs(_read(settings / "s3" / "clip1.wav")).max() == 0  # the silent instrumental
    np.testing.assert_allclose(_read(settings / "s3" / "clip2.wav"), step1["clip2"] * 0.5, atol=1e-6)
    assert np.abs(_read(settings / "s4-rm" / "clip1.wav")).max() == 0
    np.testing.assert_array_equal(_read(settings / "s4-rep" / "clip1.wav"), step1["clip1"])
    neg = _read(settings / "s4-neg" / "clip1.wav")
    np.testing.assert_array_equal(neg, _read(s["out"] / "runs" / "clip1.neg.wav"))
    np.testing.assert_array_equal(_read(settings / "direct-neg" / "clip1.wav"), neg)  # reused
    np.testing.assert_allclose(_read(settings / "s4-neg" / "clip2.wav"), step1["clip2"] * 0.5, atol=1e-6)
    assert not np.allclose(_read(settings / "direct-neg" / "clip0.wav"), step1["clip0"])

    assert list(result.rows) == [LABELS[k] for k in SETTINGS]
    table = write_summary(result, s["out"])
    assert (s["out"] / "experiment.md").read_text().count("\n|") == len(SETTINGS) + 2  # header, rule, rows
    for setting in SETTINGS:
        assert (s["out"] / "eval" / setting / "metrics.json").exists()
    # relative improvements are printed against Direct
    direct = result.rows[LABELS["direct"]]["fd_vgg"]
    s4 = result.rows[LABELS["s4-rm"]]["fd_vgg"]
    assert f"({relative_improvement(direct, s4, True):+.1f}%)" in table

    # a second run generates nothing
    before = len(requests)
    run_experiment(videos, s["ref"], s["out"], s["pipeline"], RunOptions(duration=2.0),
                   eval_settings=Settings(duration=2.0), videos_dir=s["videos"])  # fmt: skip
    assert len(requests) == before


def test_relative_improvement_signs_and_table_columns():
    assert relative_improvement(2.0, 1.0, lower_better=True) == pytest.approx(50.0)
    assert relative_improvement(2.0, 3.0, lower_better=False) == pytest.approx(50.0)
    assert relative_improvement(None, 1.0, True) is None
    table = markdown_table({"A": {"fd_vgg": 2.0}, "B": {"fd_vgg": 1.0}}, baseline="A")
    assert "1.00 (+50.0%)" in table and "| A | – |" in table


def test_experiment_command_rejects_unknown_settings(tmp_path):
    from typer.testing import CliRunner

    from deepsound.cli import app

    result = CliRunner().invoke(
        app,
        [
            "experiment",
            str(tmp_path),
            "--reference",
            str(tmp_path),
            "-o",
            str(tmp_path / "o"),
            "--setting",
            "s5",
        ],
    )
    assert result.exit_code != 0 and "unknown setting" in result.output
