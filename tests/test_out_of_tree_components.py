"""A generator and an MLLM defined here, outside the package, become first-class by one registration each.

Through the public API only (``deepsound.register``, the CLI, the web page's Blocks): each
component brings its own settings dataclass and its own weight file, and then appears in
``generate --help``, ``config show``, ``weights list``, the offline missing-weights message and
the web page's controls, and runs through ``generate``, ``batch`` and ``experiment`` — with no
edit to the package. Both components compute for real from their weight files: the generator
synthesises a tone whose pitch comes from its file, the MLLM measures the loudness of what it
hears against a threshold from its file.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from media_factory import make_audio_file, make_video
from stand_ins import tone
from typer.testing import CliRunner

from deepsound import cli, media, register
from deepsound.audio import Audio
from deepsound.errors import ConfigError
from deepsound.interfaces import Generation, GenerationRequest, MllmAnswer, MllmCall, MllmSettings
from deepsound.registry import unregister
from deepsound.weights import WeightFile
from deepsound.weights.overrides import resolve_for

runner = CliRunner()


def _npy(values: list[float]) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(values, dtype=np.float32))
    return buffer.getvalue()


CHIRP_BYTES = _npy([300.0, 20.0])  # base pitch (Hz) and pitch step per seed
ECHO_BYTES = _npy([0.5])  # RMS above which the "MLLM" hears a voice-over


def _weight_file(name: str, filename: str, data: bytes) -> WeightFile:
    return WeightFile(
        name=name,
        filename=filename,
        subdir="ext_weights",
        url=f"https://example.invalid/{filename}",
        checksum=f"sha256:{hashlib.sha256(data).hexdigest()}",
        size=len(data),
        notes="out-of-tree test component",
    )


CHIRP_FILE = _weight_file("chirp_table", "chirp_table.npy", CHIRP_BYTES)
ECHO_FILE = _weight_file("echo_threshold", "echo_threshold.npy", ECHO_BYTES)


@dataclass
class ChirpSettings:
    waveform: str = field(default="sine", metadata={"help": "wave shape", "choices": ("sine", "square")})
    gain: float = 0.3


class ChirpGenerator:
    name = "chirp"
    sample_rate = 16000

    def __init__(self, table: np.ndarray, settings: ChirpSettings) -> None:
        self.table, self.settings = table, settings

    def pitch(self, seed: int) -> float:
        return float(self.table[0] + self.table[1] * (seed % 10))

    def generate(self, request: GenerationRequest) -> Generation:
        t = np.arange(int(round(request.duration * self.sample_rate))) / self.sample_rate
        wave = np.sin(2 * np.pi * self.pitch(request.seed) * t)
        if self.settings.waveform == "square":
            wave = np.sign(wave)
        audio = Audio((self.settings.gain * wave).astype(np.float32), self.sample_rate)
        return Generation(audio, {"pitch": self.pitch(request.seed)})


def build_chirp(settings: ChirpSettings, components) -> ChirpGenerator:  # noqa: ANN001
    return ChirpGenerator(np.load(resolve_for(components.placement, "chirp_table")), settings)


@dataclass
class EchoSettings(MllmSettings):
    loudness_scale: float = 1.0


class EchoMllm:
    """Answers the step-2 question by measuring the soundtrack's RMS against its file's threshold."""

    name = "echo"

    def __init__(self, threshold: float, settings: EchoSettings) -> None:
        self.threshold, self.settings = threshold, settings
        self.model_id = "echo-1"
        self.calls: deque[MllmCall] = deque(maxlen=100)

    def ask(self, question, *, video=None, audio=None, system=None, step="") -> MllmAnswer:  # noqa: ANN001
        rms = 0.0 if audio is None else float(np.sqrt(np.mean(np.square(audio.waveform))))
        letter = "A" if rms * self.settings.loudness_scale > self.threshold else "B"
        text = f"<SUMMARY>rms {rms:.3f}</SUMMARY><CONCLUSION>{letter}</CONCLUSION>"
        record = MllmCall(step=step, model=self.model_id, system=system, prompt=question, inputs={},
                          answer=text, verdict=None, tokens_in=0, tokens_out=0, seconds=0.0)  # fmt: skip
        self.calls.append(record)
        return MllmAnswer(text, record)

    def apply_adapter(self, folder: Path) -> None:
        raise ConfigError("echo takes no adapters")


def build_echo(settings: EchoSettings, components) -> EchoMllm:  # noqa: ANN001
    return EchoMllm(float(np.load(resolve_for(components.placement, "echo_threshold"))[0]), settings)


@pytest.fixture(scope="module")
def registered():
    register("generator", "chirp", build_chirp, settings=ChirpSettings, weight_files=(CHIRP_FILE,),
             duration=(0.5, 1.8), sample_rate=16000, display_name="Chirp")  # fmt: skip
    register(
        "mllm", "echo", build_echo, settings=EchoSettings, weight_files=(ECHO_FILE,), display_name="Echo"
    )
    yield
    unregister("generator", "chirp")
    unregister("mllm", "echo")


@pytest.fixture(scope="module")
def world(registered, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("out-of-tree")
    weights = root / "weights" / "ext_weights"
    weights.mkdir(parents=True)
    (weights / "chirp_table.npy").write_bytes(CHIRP_BYTES)
    (weights / "echo_threshold.npy").write_bytes(ECHO_BYTES)
    videos = root / "videos"
    videos.mkdir()
    for stem in ("a", "b"):
        make_video(videos / f"{stem}.mp4", duration=2.0, fps=25, size=(64, 48))
    return {"root": root, "weights_dir": root / "weights", "videos": videos}


OURS = ["--generator", "chirp", "--mllm", "echo", "--judge", "mllm", "--device", "cpu"]


def _ok(args: list[str]):  # noqa: ANN202
    result = runner.invoke(cli.app, args, env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    return result


def test_generate_help_lists_their_settings(registered):
    text = _ok(["generate", "--help"]).output
    for flag in ("--chirp-waveform", "--chirp-gain", "--echo-loudness-scale", "--mllm-model", "--variant"):
        assert flag in text, flag
    assert "Chirp" in text and "Echo" in text


def test_config_show_has_their_tables(registered, tmp_path):
    shown = _ok(["config", "show", *OURS, "--chirp-gain", "0.25", "--echo-loudness-scale", "2"]).output
    assert (
        '[pipeline.generator]\nname = "chirp"\n\n[pipeline.generator.chirp]\nwaveform = "sine"\ngain = 0.25'
        in shown
    )
    assert (
        '[pipeline.mllm]\nname = "echo"\n\n[pipeline.mllm.echo]' in shown and "loudness_scale = 2.0" in shown
    )
    path = tmp_path / "ours.toml"
    path.write_text(shown)
    again = _ok(["config", "show", "--config", str(path)]).output
    assert again == shown
    bad = runner.invoke(cli.app, ["config", "show", "--generator", "chirp", "--chirp-waveform", "saw"])
    assert bad.exit_code != 0 and "unknown waveform 'saw'" in bad.output and "Traceback" not in bad.output
    # settings are keyed by component: a table for chirp waits while MMAudio is chosen, and applies once
    # chirp is; a key in the section itself belongs to the component chosen where it is written
    keyed = tmp_path / "keyed.toml"
    keyed.write_text('[pipeline.generator]\nvariant = "small_16k"\n[pipeline.generator.chirp]\ngain = 0.1\n')
    waiting = _ok(["config", "show", "--config", str(keyed)]).output
    assert 'name = "mmaudio"\n\n[pipeline.generator.mmaudio]\nvariant = "small_16k"' in waiting
    assert '[pipeline.generator.chirp]\nwaveform = "sine"\ngain = 0.1' in waiting
    chosen = _ok(["config", "show", "--config", str(keyed), "--generator", "chirp"]).output
    assert '[pipeline.generator]\nname = "chirp"\n' in chosen and "gain = 0.1" in chosen
    assert '[pipeline.generator.mmaudio]\nvariant = "small_16k"' in chosen
    wrong = runner.invoke(cli.app, ["config", "show", "--generator", "chirp", "--chirp-volume", "1"])
    assert wrong.exit_code != 0 and "--chirp-volume" in wrong.output


def test_weights_list_and_the_offline_message_name_their_files(world, tmp_path):
    listed = _ok(["weights", "list", "--weights-dir", str(world["weights_dir"])]).output
    rows = {line.split("│")[1].strip(): line for line in listed.splitlines() if line.count("│") > 3}
    assert "Chirp" in rows["chirp_table"] and "Echo" in rows["echo_threshold"]  # named with their users
    assert "MMAudio" in rows["mmaudio_small_16k"] and "BS-RoFormer" in rows["bs_roformer_viperx"]
    video = world["videos"] / "a.mp4"
    empty = tmp_path / "empty"
    empty.mkdir()
    result = runner.invoke(
        cli.app,
        ["generate", str(video), "-o", str(tmp_path / "o"), *OURS, "--duration", "1.5", "--offline"]
        + ["--weights-dir", str(empty)],
    )
    assert result.exit_code != 0 and "Traceback" not in result.output
    message = " ".join(result.output.split())
    assert "ext_weights/chirp_table.npy" in message and "ext_weights/echo_threshold.npy" in message
    # with a judge that never asks the MLLM (its entry needs none), the MLLM's file is not required
    args = ["generate", str(video), "-o", str(tmp_path / "o"), "--generator", "chirp", "--mllm", "echo"]
    args += ["--duration", "1.5"]  # within the generator's range: inputs are checked before weights
    result = runner.invoke(cli.app, [*args, "--judge", "speech", "--offline", "--weights-dir", str(empty)])
    message = " ".join(result.output.split())
    assert result.exit_code != 0 and "chirp_table.npy" in message and "echo_threshold" not in message


def test_generate_runs_them_and_the_trace_says_so(world, tmp_path):
    out = tmp_path / "out"
    args = [
        "generate",
        str(world["videos"] / "a.mp4"),
        "-o",
        str(out),
        *OURS,
        "--seed",
        "3",
        "--duration",
        "1.5",
    ]
    _ok([*args, "--weights-dir", str(world["weights_dir"]), "--chirp-waveform", "square"])
    trace = json.loads((out / "a.trace.json").read_text())
    steps = {s["step"]: s for s in trace["steps"]}
    assert (
        steps["step1_generate"]["component"] == "chirp"
        and steps["step1_generate"]["evidence"]["pitch"] == 360.0
    )
    judged = steps["step2_judge_voice_over"]
    assert judged["decision"]["has_voice_over"] is False  # square wave of 0.3: RMS 0.3 < 0.5
    assert judged["mllm_calls"][0]["model"] == "echo-1" and judged["mllm_calls"][0]["verdict"] is False
    audio = media.read_audio(out / "a.wav")
    assert audio.sample_rate == 16000 and abs(audio.duration - 1.5) < 0.01
    assert np.mean(np.isclose(np.abs(audio.waveform), 0.3, atol=2e-3)) > 0.99  # the square wave asked for
    spectrum = np.abs(np.fft.rfft(audio.waveform[0]))
    assert np.argmax(spectrum) / audio.duration == pytest.approx(
        360.0, abs=1.0
    )  # 300 + 20 × 3, from its file


def test_its_duration_range_is_checked_before_it_runs(world, tmp_path):
    base = ["generate", str(world["videos"] / "b.mp4"), "-o", str(tmp_path / "o"), *OURS, "--weights-dir",
            str(world["weights_dir"])]  # fmt: skip
    short = runner.invoke(cli.app, [*base, "--duration", "0.3"])
    assert short.exit_code != 0 and "needs at least 0.50 s" in short.output
    long = runner.invoke(cli.app, [*base, "--duration", "2"])
    assert long.exit_code != 0 and "at most 1.80 s" in " ".join(long.output.split())
    _ok([*base, "--duration", "2", "--window", "1.5"])  # windows within its range: generated, cross-faded
    trace = json.loads((tmp_path / "o" / "b.trace.json").read_text())
    generated = next(s for s in trace["steps"] if s["step"] == "step1_generate")
    assert [w["duration"] for w in generated["evidence"]["windows"]] == [1.5, 1.5]


def test_batch_runs_them(world, tmp_path):
    out = tmp_path / "batch"
    _ok(["batch", str(world["videos"]), "-o", str(out), *OURS, "--duration", "1", "--weights-dir",
         str(world["weights_dir"]), "--chirp-gain", "0.6"])  # fmt: skip
    summary = json.loads((out / "batch_summary.json").read_text())
    assert sorted(item["status"] for item in summary["items"]) == ["done", "done"]
    for stem in ("a", "b"):  # RMS 0.6 / √2 ≈ 0.42 stays under the file's 0.5: no voice-over heard
        trace = json.loads((out / f"{stem}.trace.json").read_text())
        judged = next(s for s in trace["steps"] if s["step"] == "step2_judge_voice_over")
        assert judged["decision"]["has_voice_over"] is False and "0.424" in judged["mllm_calls"][0]["answer"]


def test_experiment_runs_them(world, tmp_path, monkeypatch):
    from evaluation_doubles import install

    install(monkeypatch)
    ref = tmp_path / "ref"
    ref.mkdir()
    for i, stem in enumerate(("a", "b")):
        make_audio_file(ref / f"{stem}.wav", tone(2.0, freq=300 + 100 * i))
    out = tmp_path / "exp"
    _ok(["experiment", str(world["videos"]), "--reference", str(ref), "-o", str(out), "--generator", "chirp",
         "--mllm", "echo", "--judge", "mllm", "--device", "cpu", "--duration", "1", "--setting", "direct,s3",
         "--metrics", "fd_vgg", "--weights-dir", str(world["weights_dir"]), "--quiet"])  # fmt: skip
    table = (out / "experiment.md").read_text()
    assert "Direct" in table and "Step-by-step s3" in table
    runs = sorted(p.name for p in (out / "runs").glob("*.trace.json"))
    assert runs == ["a.trace.json", "b.trace.json"]
    trace = json.loads((out / "runs" / "a.trace.json").read_text())
    assert trace["config"]["generator"]["name"] == "chirp" and trace["config"]["mllm"]["name"] == "echo"


def test_the_web_page_offers_them(world, registered):
    pytest.importorskip("gradio", reason="the ui extra (gradio) is not installed")
    from deepsound.config import GeneratorConfig, MllmConfig, PipelineConfig
    from deepsound.pipeline import Pipeline
    from deepsound.ui import UiSettings, WebUI

    config = PipelineConfig(generator=GeneratorConfig("chirp"), mllm=MllmConfig("echo"), device="cpu", judge="mllm",
                            weights_dir=world["weights_dir"])  # fmt: skip
    page = WebUI(Pipeline(config), UiSettings(), example=False)
    try:
        props = [c.get("props", {}) for c in page.blocks.config["components"]]
        generator = next(p for p in props if p.get("label") == "Generator")
        assert ["Chirp", "chirp"] in [list(c) for c in generator["choices"]] and generator["value"] == "chirp"
        shape = next(p for p in props if p.get("label") == "Chirp wave shape")
        assert [c[1] for c in shape["choices"]] == ["sine", "square"]
        variant = next(p for p in props if p.get("label") == "MMAudio variant")
        assert shape["visible"] is True and variant["visible"] is False  # only the chosen generator's choices
        chosen = page.family.pipeline(generator="chirp", settings={"waveform": "square"}, judge="mllm")
        assert chosen.config.generator.waveform == "square"
        assert chosen.components.generator.settings.waveform == "square"
        assert chosen.components.mllm is page.family.base.components.mllm  # one MLLM for every choice
    finally:
        page.close()
