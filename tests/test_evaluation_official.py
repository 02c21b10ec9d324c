"""``deepsound evaluate`` with official-format weight files gives av-benchmark's own caches.

The setting an outside check uses: checkpoint files in the published layouts
(``ext_weights/Cnn14_16k_mAP=0.438.pth`` wrapped in ``{"model": …}``,
``vggish-10086976.pth``, ``passt-s-f128-p16-s10-ap.476-swa.pt``) holding the
seeded weights with which ``tools/goldens/av_benchmark_audio.py`` ran
av-benchmark's extraction on the same clips (its caches are
``tests/data/eval_audio/official_cache``), the command run offline with
``--weights-dir``, and that official cache given as the reference, as a
released cache is. Our generated-side caches must equal the official ones
(rel. L2 ≤ 1e-5 per entry), and the released cache must be read, not written.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

DATA = Path(__file__).parent / "data" / "eval_audio"
CACHE = DATA / "official_cache"
pytest.importorskip("deepsound.models.eval")


def _weights(folder: Path) -> None:
    from eval_audio_support import SEED, seeded_state

    from deepsound.models.eval import Cnn14

    ext = folder / "ext_weights"
    ext.mkdir(parents=True)

    def manifest(name: str) -> dict:
        return json.loads((DATA / f"{name}_manifest.json").read_text(encoding="utf-8"))

    front = torch.load(DATA / "panns_frontend.pt", weights_only=True)
    keep = {k: v for k, v in Cnn14().state_dict().items() if k.startswith(("spectrogram_", "logmel_"))}
    keep["logmel_extractor.melW"] = front["melW"]
    torch.save({"model": seeded_state(manifest("panns"), SEED, keep)}, ext / "Cnn14_16k_mAP=0.438.pth")
    torch.save(seeded_state(manifest("vggish"), SEED), ext / "vggish-10086976.pth")
    torch.save(seeded_state(manifest("passt"), SEED), ext / "passt-s-f128-p16-s10-ap.476-swa.pt")


@pytest.mark.slow
def test_evaluate_with_official_format_weights_reproduces_av_benchmarks_caches(tmp_path, monkeypatch):
    from eval_audio_support import synthetic_clips

    from deepsound.cli import app
    from deepsound.testing.equivalence import relative_l2

    monkeypatch.setenv("DEEPSOUND_CACHE", str(tmp_path / "dcache"))
    _weights(tmp_path / "w")
    pred = tmp_path / "pred"
    synthetic_clips(pred)
    shutil.copy(DATA / "speech.flac", pred / "speech.flac")
    released = tmp_path / "released"
    shutil.copytree(CACHE, released)
    before = {p.name: p.stat().st_mtime_ns for p in released.iterdir()}
    out = tmp_path / "out"
    args = ["evaluate", str(pred), "--reference", str(released), "-o", str(out), "--offline",
            "--weights-dir", str(tmp_path / "w"), "--device", "cpu", "--quiet",
            "--metrics", "fd_panns,kl_panns,is_panns,fd_vgg,fd_passt,kl_passt"]  # fmt: skip
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output + repr(result.exception)
    ours_dir = out / "cache" / "generated"
    for name in ("pann_features.pth", "vggish_features.pth", "passt_features_embed.pth", "passt_logits.pth"):
        ours = torch.load(ours_dir / name, weights_only=True)
        official = torch.load(CACHE / name, weights_only=True)
        assert set(ours) == {"mono_16k", "short_48k", "speech", "stereo_44k"}
        for stem, value in ours.items():
            expected = official[stem]
            if isinstance(expected, dict):
                assert list(value) == list(expected)
                for key in expected:
                    assert relative_l2(value[key], expected[key]) <= 1e-5, (name, stem, key)
            else:
                assert value.shape == expected.shape and relative_l2(value, expected) <= 1e-5, (name, stem)
    assert {p.name: p.stat().st_mtime_ns for p in released.iterdir()} == before
    data = json.loads((out / "metrics.json").read_text())
    assert data["settings"]["reference_cache_released"] is True
    assert data["pairs"]["kl_panns"] == 4 and data["kl_panns"] < 1e-6  # the same features on both sides
