"""The audio evaluation models and their audio loading equal av-benchmark's.

Goldens (``tests/data/eval_audio/``) were made by ``tools/goldens/av_benchmark_audio.py``
from hkchengrex/av-benchmark at commit 050a5cd and hkchengrex/passt_hear21 at 1ab7789,
on the CPU: the official modules were built to write the manifests, filled with seeded
weights (``eval_audio_support.seeded_state``), saved in the official file formats where
the official loaders read them, and ``av_bench.extract.extract`` was run (batch size 1,
10 s) on the synthetic clips of ``eval_audio_support.synthetic_clips``, an espeak-ng
sentence (``speech.flac``) and the real clip ``1QBsc_IXg8U_000750.mp4`` (decoded to a
float WAV for the official code, read from the MP4 by ours). ``official_cache/`` holds
the caches it wrote; torchaudio's two resamplers and a reduced official PaSST were
recorded beside them. Here the same seeded weights are written to files, loaded
through :mod:`deepsound.weights.loading`, and our features must match: rel. L2 ≤ 1e-5;
resampled audio within 1e-6.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from eval_audio_support import DATA, SEED, seeded_state, synthetic_clips

from deepsound.errors import MediaError, WeightsError
from deepsound.evaluation.audio import (
    load_feature_inputs,
    load_for_features,
    load_for_synchformer,
    sinc_resample,
)
from deepsound.models.eval import (
    Cnn14,
    PaSST,
    VGGish,
    load_panns,
    load_passt,
    load_vggish,
    panns_features,
    passt_features,
    vggish_features,
)
from deepsound.models.eval import panns as panns_module
from deepsound.testing.equivalence import manifest_diff, parameter_manifest, relative_l2

REAL_CLIP = "1QBsc_IXg8U_000750.mp4"
SHORT = ("short_48k", "speech")
CACHE = DATA / "official_cache"


def _manifest(name: str) -> dict[str, list[int]]:
    return json.loads((DATA / f"{name}_manifest.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("eval_clips")
    paths = {p.stem: p for p in synthetic_clips(folder)}
    paths["speech"] = DATA / "speech.flac"
    return paths


def _with_real(clips: dict[str, Path], request: pytest.FixtureRequest) -> dict[str, Path]:
    """The clips plus the real one where the shared media are present (only then)."""
    try:
        media = request.getfixturevalue("media_dir")
    except pytest.skip.Exception:
        return clips
    return {**clips, Path(REAL_CLIP).stem: media / REAL_CLIP}


# --- layouts ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "build"),
    [
        ("panns", Cnn14),
        ("vggish", VGGish),
        ("passt", PaSST),
        ("passt_tiny", lambda: PaSST(dim=64, depth=2, heads=4)),
    ],
)
def test_layout_equals_the_official_checkpoint(name: str, build) -> None:
    with torch.device("meta"):
        ours = parameter_manifest(build().state_dict())
    assert manifest_diff(ours, _manifest(name)) == []


def _zeros(name: str) -> dict[str, torch.Tensor]:
    """A file of the right layout whose values do not matter (loading checks only)."""
    return {k: torch.zeros(shape) for k, shape in _manifest(name).items()}


def test_a_file_that_does_not_fit_fails_with_one_clear_error(tmp_path: Path) -> None:
    state = _zeros("vggish")
    state.pop("embeddings.4.bias")
    path = tmp_path / "vggish-10086976.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match="missing: embeddings.4.bias"):
        load_vggish(path, "cpu")


def test_a_weights_folder_in_the_published_layout_is_found(tmp_path: Path) -> None:
    folder = tmp_path / "ext_weights"
    folder.mkdir()
    torch.save(_zeros("vggish"), folder / "vggish-10086976.pth")
    # found by its published name, then checked: these bytes are not the published file's
    with pytest.raises(WeightsError, match="checksum mismatch for vggish"):
        load_vggish(device="cpu", weights_dir=tmp_path, offline=True)
    # given as the user's own file, the same bytes load strictly
    model = load_vggish(folder / "vggish-10086976.pth", device="cpu")
    assert not model.training
    with pytest.raises(WeightsError, match="missing"):
        load_vggish(device="cpu", weights_dir=tmp_path / "empty", offline=True)


def test_panns_front_end_is_torchlibrosas() -> None:
    golden = torch.load(DATA / "panns_frontend.pt", weights_only=True)
    with torch.device("cpu"):
        model = Cnn14()
    assert torch.allclose(model.logmel_extractor.melW, golden["melW"], rtol=0, atol=1e-7)
    stft = model.spectrogram_extractor.stft
    assert torch.allclose(stft.conv_real.weight[::32], golden["conv_real_rows"], rtol=0, atol=1e-6)
    assert torch.allclose(stft.conv_imag.weight[::32], golden["conv_imag_rows"], rtol=0, atol=1e-6)


# --- audio loading ---------------------------------------------------------------------


def test_resampler_equals_torchaudios_in_both_kernel_precisions() -> None:
    golden = torch.load(DATA / "resample.pt", weights_only=True)
    # the two precisions genuinely differ, so using the wrong one would be caught
    assert any(not torch.equal(c["transform"], c["functional"]) for c in golden.values())
    for pair, case in golden.items():
        orig, new = (int(v) for v in pair.split("->"))
        for precision, key in (("float64", "transform"), ("float32", "functional")):
            ours = sinc_resample(case["input"], orig, new, precision)
            assert ours.shape == case[key].shape, pair
            assert (ours - case[key]).abs().max().item() <= 1e-6, (pair, precision)


def _check_prepared(clips: dict[str, Path]) -> None:
    golden = torch.load(DATA / "prepared.pt", weights_only=True)
    for stem, path in clips.items():
        once = load_feature_inputs(path, 10.0)
        for rate in (16000, 32000):
            expected = golden[f"{stem}@{rate}"]
            ours = load_for_features(path, rate, 10.0)
            assert torch.equal(once[rate], ours), (stem, rate)
            assert ours.shape[-1] == expected["length"], (stem, rate)
            assert (ours[: expected["head"].shape[-1]] - expected["head"]).abs().max().item() <= 1e-6
            assert abs(ours.double().sum().item() - expected["sum"]) <= 1e-3, (stem, rate)


def test_prepared_audio_equals_av_benchmarks(clips: dict[str, Path]) -> None:
    _check_prepared(clips)


def test_prepared_audio_of_a_real_clip(media_dir: Path) -> None:
    _check_prepared({Path(REAL_CLIP).stem: media_dir / REAL_CLIP})


def test_too_short_audio_for_synchronisation_is_an_error(clips: dict[str, Path]) -> None:
    with pytest.raises(MediaError, match="shorter than the 10 s"):
        load_for_synchformer(clips["short_48k"], 10.0)
    assert load_for_synchformer(clips["stereo_44k"], 10.0).shape == (160000,)


# --- features --------------------------------------------------------------------------


def _checkpoint(tmp_path: Path, name: str, filename: str, wrap: bool = False, keep=None) -> Path:
    state = seeded_state(_manifest(name), SEED, keep)
    path = tmp_path / filename
    torch.save({"model": state} if wrap else state, path)
    return path


def _compare(golden: object, ours: object, where: str, ordered: bool = False) -> None:
    if isinstance(golden, dict):
        # PANNs' per-file cache entry is this very dict: same keys in the same order
        assert (list(ours) == list(golden)) if ordered else (set(ours) == set(golden)), where
        for key in golden:
            _compare(golden[key], ours[key], f"{where}/{key}")
        return
    assert relative_l2(ours, golden) <= 1e-5, where


def _run_panns(tmp_path: Path, clips: dict[str, Path]) -> None:
    front = torch.load(DATA / "panns_frontend.pt", weights_only=True)
    model_front = Cnn14().state_dict()
    keep = {k: v for k, v in model_front.items() if k.startswith(("spectrogram_", "logmel_"))}
    keep["logmel_extractor.melW"] = front["melW"]
    model = load_panns(_checkpoint(tmp_path, "panns", "Cnn14_16k_mAP=0.438.pth", wrap=True, keep=keep), "cpu")
    golden = torch.load(CACHE / panns_module.CACHE_FILE, weights_only=True)
    for stem, path in clips.items():
        out = panns_features(model, load_for_features(path, 16000)[None])
        _compare(golden[stem], {k: v[0] for k, v in out.items()}, f"panns/{stem}", ordered=True)


def _run_vggish(tmp_path: Path, clips: dict[str, Path]) -> None:
    model = load_vggish(_checkpoint(tmp_path, "vggish", "vggish-10086976.pth"), "cpu")
    golden = torch.load(CACHE / "vggish_features.pth", weights_only=True)
    for stem, path in clips.items():
        out = vggish_features(model, load_for_features(path, 16000)[None])
        assert out.shape[1:] == golden[stem].shape, stem
        _compare(golden[stem], out[0], f"vggish/{stem}")


def _run_passt(tmp_path: Path, clips: dict[str, Path]) -> None:
    model = load_passt(_checkpoint(tmp_path, "passt", "passt-s-f128-p16-s10-ap.476-swa.pt"), "cpu")
    embed = torch.load(CACHE / "passt_features_embed.pth", weights_only=True)
    logits = torch.load(CACHE / "passt_logits.pth", weights_only=True)
    for stem, path in clips.items():
        out = passt_features(model, load_for_features(path, 32000)[None])
        _compare(
            {"features_embed": embed[stem], "logits": logits[stem]}, {k: v[0] for k, v in out.items()}, stem
        )


def test_reduced_passt_equals_the_official_classes(tmp_path: Path, clips: dict[str, Path]) -> None:
    from deepsound.models.eval.passt import LOAD_RULES
    from deepsound.weights.loading import load_into

    path = _checkpoint(tmp_path, "passt_tiny", "passt_tiny.pt")
    model = load_into(PaSST(dim=64, depth=2, heads=4), path, "reduced PaSST", LOAD_RULES).eval()
    golden = torch.load(DATA / "passt_tiny.pt", weights_only=True)
    for stem, clip in clips.items():
        out = passt_features(model, load_for_features(clip, 32000)[None])
        _compare(golden[stem], {k: v[0] for k, v in out.items()}, f"passt_tiny/{stem}")


def test_panns_on_short_clips(tmp_path: Path, clips: dict[str, Path]) -> None:
    _run_panns(tmp_path, {k: clips[k] for k in SHORT})


def test_vggish_on_short_clips(tmp_path: Path, clips: dict[str, Path]) -> None:
    _run_vggish(tmp_path, {k: clips[k] for k in SHORT})


@pytest.mark.slow
def test_panns_on_every_clip(tmp_path: Path, clips, request) -> None:
    _run_panns(tmp_path, _with_real(clips, request))


@pytest.mark.slow
def test_vggish_on_every_clip(tmp_path: Path, clips, request) -> None:
    _run_vggish(tmp_path, _with_real(clips, request))


@pytest.mark.slow
def test_passt_on_every_clip(tmp_path: Path, clips, request) -> None:
    _run_passt(tmp_path, _with_real(clips, request))
