"""``deepsound experiment``'s orchestration: one step-1 generation per video and backend serves
every setting; every row over the same clips; every lost clip accounted for.

Stand-in components drive the step loop (a tone generator whose pitch says whether "human
voice" was the negative prompt, a judge and a separator scripted per clip) and the
evaluation's feature models are the doubles of ``evaluation_doubles.py``: what is checked is
the orchestration (the real models run in ``test_evaluation_experiment_e2e.py``): which file
each setting takes, how often the generator runs, the paper's rows and their pairing with
the reference sets, the % change against Direct & VO-Free, the common clip set, the failure
list, the clear error when no clip is left, and that a second run generates nothing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from evaluation_doubles import install
from media_factory import make_video
from stand_ins import ScriptedJudge, ToneGenerator, tone

from deepsound import media
from deepsound.config import PipelineConfig, RunOptions
from deepsound.errors import DeepSoundError
from deepsound.evaluation.experiment import Backend, parse_backends
from deepsound.evaluation.experiment_run import run_experiment
from deepsound.evaluation.extractors import Settings
from deepsound.evaluation.paper_table import BASELINE, ROWS, markdown, to_json, write_table
from deepsound.evaluation.reference_set import build_reference_set
from deepsound.evaluation.report import relative_improvement
from deepsound.interfaces import Separation, VoiceOverVerdict
from deepsound.pipeline import Pipeline
from deepsound.registry import Components

# clip0: no voice-over; clip1: voice-over, silent after removal; clip2: voice-over, music remains
VOICE = {"clip0": False, "clip1": True, "clip2": True}
EVAL = Settings(duration=2.0)


@dataclass
class StemJudge:
    name: str = "by-stem"

    def judge(self, video, audio):  # noqa: ANN001, ANN201
        return VoiceOverVerdict(VOICE[Path(video).stem], self.name, evidence={"stem": Path(video).stem})


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


def _pipeline(generator, judge=None, separator=None) -> Pipeline:  # noqa: ANN001
    cfg = PipelineConfig()
    overrides = {
        "generator": generator,
        "judge": judge or StemJudge(),
        "separator": separator or QueueSeparator(),
    }
    return Pipeline(cfg, Components(cfg, overrides))


@pytest.fixture()
def setup(tmp_path: Path, monkeypatch):
    install(monkeypatch)
    videos, ref = tmp_path / "videos", tmp_path / "ref"
    videos.mkdir()
    ref.mkdir()
    for i, stem in enumerate(VOICE):
        make_video(videos / f"{stem}.mp4", duration=2.0, fps=25, size=(64, 48))
        make_video(
            ref / f"{stem}.mp4", duration=2.0, fps=25, size=(64, 48), audio=tone(2.0, freq=300 + 100 * i)
        )
    # a VO-Free set built by a judge that hears nothing: its audio is the reference's own
    vo_free = tmp_path / "vofree"
    build_reference_set(ref, vo_free, _pipeline(ToneGenerator(), judge=ScriptedJudge(False)))
    generator = ToneGenerator()
    return {"videos": videos, "ref": ref, "vo_free": vo_free, "out": tmp_path / "exp",
            "pipeline": _pipeline(generator), "generator": generator}  # fmt: skip


def _read(path: Path) -> np.ndarray:
    return media.read_audio(path).waveform


def _run(s, videos, **kw):  # noqa: ANN001, ANN202
    pipelines = kw.pop("pipelines", None) or {Backend("tone"): s["pipeline"]}
    return run_experiment(videos, s["ref"], s["out"], pipelines, RunOptions(duration=2.0), vo_free=s["vo_free"],
                          eval_settings=EVAL, videos_dir=s["videos"], **kw)  # fmt: skip


def test_every_setting_from_one_generation_and_the_papers_rows(setup):
    s = setup
    videos = sorted(s["videos"].glob("*.mp4"))
    table = _run(s, videos)
    requests = s["generator"].requests
    # 3 step-1 generations, 1 neg fallback (clip1), and Direct-neg for clip0 and clip2 only
    assert len(requests) == 6
    assert sum("human voice" in r.negative_prompt for r in requests) == 3
    settings = s["out"] / "settings"  # one backend: the layout of earlier versions
    runs = s["out"] / "runs"
    step1 = {stem: _read(runs / f"{stem}.step1.wav") for stem in VOICE}
    for stem in VOICE:
        np.testing.assert_array_equal(_read(settings / "direct" / f"{stem}.wav"), step1[stem])
    np.testing.assert_array_equal(_read(settings / "s3" / "clip0.wav"), step1["clip0"])
    assert np.abs(_read(settings / "s3" / "clip1.wav")).max() == 0  # the silent instrumental
    np.testing.assert_allclose(_read(settings / "s3" / "clip2.wav"), step1["clip2"] * 0.5, atol=1e-6)
    assert np.abs(_read(settings / "s4-rm" / "clip1.wav")).max() == 0
    np.testing.assert_array_equal(_read(settings / "s4-rep" / "clip1.wav"), step1["clip1"])
    neg = _read(settings / "s4-neg" / "clip1.wav")
    np.testing.assert_array_equal(neg, _read(runs / "clip1.neg.wav"))
    np.testing.assert_array_equal(_read(settings / "direct-neg" / "clip1.wav"), neg)  # reused
    assert not np.allclose(_read(settings / "direct-neg" / "clip0.wav"), step1["clip0"])

    # the paper's rows, each with its reference set, over the same three clips
    block = table.blocks["tone"]
    assert list(block) == [label for _, _, label in ROWS]
    assert [(r.setting, r.reference) for r in block.values()] == [(a, b) for a, b, _ in ROWS]
    assert table.common == ["clip0", "clip1", "clip2"] and not table.excluded
    assert all(r.clips == 3 for r in block.values())
    evaluated = json.loads((s["out"] / "eval" / "direct-ori-set" / "metrics.json").read_text())
    assert evaluated["settings"]["reference"] == str(s["ref"])
    evaluated = json.loads((s["out"] / "eval" / "ours-s3-vo-free" / "metrics.json").read_text())
    assert evaluated["settings"]["reference"] == str(s["vo_free"])
    # the change against Direct & VO-Free, positive = better in both directions
    base, s4 = block[BASELINE].scores, block["Ours (s4-rm) & VO-Free"].scores
    change = table.improvement("tone", "Ours (s4-rm) & VO-Free")
    assert change["fd_vgg"] == pytest.approx(relative_improvement(base["fd_vgg"], s4["fd_vgg"], True))
    assert f"({change['fd_vgg']:+.2f}%)" in markdown(table)
    assert table.improvement("tone", BASELINE) == {}
    # what each row cost: Direct = step 1 only; s4-neg adds the neg regeneration of clip1
    assert block["Direct & Ori-Set"].seconds < block["Ours (s4-neg) & VO-Free"].seconds
    assert all(r.mllm_calls == 0 for r in block.values())

    paths = write_table(table, s["out"])
    assert set(paths) == {"json", "markdown", "csv", "figure"} and all(p.exists() for p in paths.values())
    assert to_json(table)["rows"] == [label for _, _, label in ROWS]

    before = len(requests)
    _run(s, videos)  # a second run generates nothing
    assert len(requests) == before


def test_a_clip_that_fails_is_left_out_of_every_row_with_its_reason(setup):
    s = setup
    broken = s["videos"] / "clip9.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 not a video")
    videos = sorted(s["videos"].glob("*.mp4"))
    table = _run(s, videos, settings=("direct", "s3"))
    assert table.common == ["clip0", "clip1", "clip2"]
    assert set(table.excluded) == {"clip9"}
    reasons = table.excluded["clip9"]
    assert set(reasons) == {f"tone / {label}" for setting, _, label in ROWS if setting in ("direct", "s3")}
    assert all("clip9" in r or "generation failed" in r for r in reasons.values())
    assert list(table.blocks["tone"]) == ["Direct & Ori-Set", "Direct & VO-Free", "Ours (s3) & VO-Free"]
    write_table(table, s["out"])
    assert "- `clip9`: tone / Direct & Ori-Set: generation failed" in (s["out"] / "experiment.md").read_text()


def test_no_clip_left_is_a_clear_error(setup):
    s = setup
    broken = s["videos"].parent / "bad.mp4"
    broken.write_bytes(b"not a video at all")
    with pytest.raises(DeepSoundError, match="no clip can be scored in every row"):
        _run(s, [broken], settings=("direct",))


def test_backends_are_registered_names_with_an_optional_variant():
    default = Backend("mmaudio", "large_44k_v2")
    assert parse_backends(None, default) == [default]
    assert parse_backends(["mmaudio:small_44k,mmaudio:large_44k"], default) == [
        Backend("mmaudio", "small_44k"), Backend("mmaudio", "large_44k")]  # fmt: skip
    assert Backend("mmaudio", "small_44k").slug == "mmaudio-small_44k"
    with pytest.raises(Exception, match="unknown generator 'nope'"):
        parse_backends("mmaudio,nope", default)
    with pytest.raises(Exception, match="given twice"):
        parse_backends("mmaudio:small_44k,mmaudio:small_44k", default)


def test_experiment_command_rejects_unknown_settings_and_experiment_keys(tmp_path):
    from typer.testing import CliRunner

    from deepsound.cli import app

    base = ["experiment", str(tmp_path), "--reference", str(tmp_path), "-o", str(tmp_path / "o")]
    result = CliRunner().invoke(app, [*base, "--setting", "s5"])
    assert result.exit_code != 0 and "unknown setting" in result.output
    config = tmp_path / "exp.toml"
    config.write_text('[experiment]\ngenerators = ["mmaudio:small_44k"]\nrows = 3\n')
    result = CliRunner().invoke(app, [*base, "--config", str(config)])
    assert result.exit_code != 0 and "unknown key(s) rows in the experiment table" in result.output


def test_experiment_command_takes_the_shared_options_backends_and_toml(tmp_path, monkeypatch):
    """--preset paper, --config with [experiment], and every backend built from the shared settings."""
    from typer.testing import CliRunner

    from deepsound.cli import app
    from deepsound.cli import options as cli_options
    from deepsound.evaluation import experiment_run

    built, seen = [], {}
    monkeypatch.setattr(cli_options, "build_pipeline", lambda settings: built.append(settings) or object())

    def fake_run(videos, reference, out, pipelines, options, **kw):  # noqa: ANN001, ANN202
        seen.update(pipelines=pipelines, options=options, **kw)
        raise DeepSoundError("stop here")

    monkeypatch.setattr(experiment_run, "run_experiment", fake_run)
    (tmp_path / "v.mp4").write_bytes(b"")
    config = tmp_path / "exp.toml"
    config.write_text('[experiment]\ngenerators = ["mmaudio:small_44k", "mmaudio:medium_44k"]\n'
                      'settings = ["direct", "s4-neg"]\n[run]\nseed = 7\n')  # fmt: skip
    argv = ["experiment", str(tmp_path), "--reference", str(tmp_path), "-o", str(tmp_path / "o"),
            "--preset", "paper", "--config", str(config), "--steps", "3"]  # fmt: skip
    result = CliRunner().invoke(app, argv)
    assert "stop here" in result.output
    assert [s.pipeline.generator.variant for s in built] == ["small_44k", "medium_44k"]
    assert all(s.pipeline.mllm.name == "videollama2-cot" and s.pipeline.judge == "mllm" for s in built)
    assert (
        seen["options"].seed == 7
        and seen["options"].num_steps == 3
        and seen["settings"] == ("direct", "s4-neg")
    )
    assert [b.label for b in seen["pipelines"]] == ["mmaudio:small_44k", "mmaudio:medium_44k"]
    # --generator on the command line wins over the file
    built.clear()
    CliRunner().invoke(app, [*argv, "--generator", "mmaudio:large_44k"])
    assert [s.pipeline.generator.variant for s in built] == ["large_44k"]
