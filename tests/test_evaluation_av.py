"""IB-score and DeSync through the built-in ImageBind and Synchformer extractors (tiny networks).

The networks are the project's ImageBind (vision + audio towers) and
Synchformer (audio branch, visual branch, offset head) at narrow widths and
random weights (their equality to the official modules at full size is proven
in their own tests). Checked here: the runner sends the generated audio and
the videos to the right branches, stores av-benchmark's cache entries, and
the IB-score and DeSync in metrics.json are the cosine similarities and grid
offsets of those features, per clip as from the model's own per-file functions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from media_factory import make_audio_file, make_video

from deepsound.audio import Audio
from deepsound.evaluation.builtin_models import (
    ImageBindAudioExtractor,
    ImageBindVideoExtractor,
    SynchformerAudioExtractor,
    SynchformerVideoExtractor,
)
from deepsound.evaluation.extractors import Settings
from deepsound.evaluation.runner import evaluate

ib = pytest.importorskip("deepsound.models.eval.imagebind")
sfa = pytest.importorskip("deepsound.models.eval.synchformer_audio")
DURATION = 5.0  # the shortest clip DeSync can score (14 windows)


@pytest.fixture(scope="module")
def networks():
    torch.manual_seed(0)
    ib_model = ib.ImageBindAV(ib.ImageBindConfig.tiny()).eval()
    cfg = sfa.SynchformerAVConfig(
        dim=64, audio_depth=1, audio_heads=2, audio_mlp=128, head_depth=1, head_heads=2,
        visual=sfa.SynchformerConfig(embed_dim=64, depth=1, num_heads=2),
    )  # fmt: skip
    return ib_model, sfa.SynchformerAV(cfg).eval()


def test_ib_score_and_desync_from_the_real_branches(tmp_path, networks):
    ib_model, sync = networks
    gen, videos = tmp_path / "gen", tmp_path / "videos"
    gen.mkdir()
    videos.mkdir()
    rng = np.random.RandomState(0)
    for i in range(2):
        make_video(videos / f"c{i}.mp4", duration=DURATION + 0.2, fps=25, size=(96, 72),
                   audio=Audio((0.1 * rng.randn(1, 16000 * 6)).astype(np.float32), 16000))  # fmt: skip
        make_audio_file(
            gen / f"c{i}.wav", Audio((0.2 * rng.randn(2, int(44100 * 5.5))).astype(np.float32), 44100)
        )
    make_audio_file(gen / "c2.wav", Audio(np.zeros((1, 16000 * 3), np.float32), 16000))  # too short
    settings = Settings(duration=DURATION)
    extractors = {
        ("imagebind", "audio"): ImageBindAudioExtractor(settings, ib_model, "random"),
        ("imagebind", "video"): ImageBindVideoExtractor(settings, ib_model, "random"),
        ("synchformer", "audio"): SynchformerAudioExtractor(settings, sync, "random"),
        ("synchformer", "video"): SynchformerVideoExtractor(settings, sync, "random"),
        ("synchformer", "head"): sync.compare_v_a,
    }
    result = evaluate(
        gen, videos, videos=videos, out_dir=tmp_path / "out", settings=settings,
        metrics=["ib_score", "desync"], extractors=extractors,
    )  # fmt: skip
    assert [(f.stem, f.model) for f in result.failures] == [("c2", "synchformer_audio")]
    assert "too short" in result.failures[0].reason or "shorter" in result.failures[0].reason
    ref_cache = tmp_path / "out" / "cache" / "reference"
    gen_cache = tmp_path / "out" / "cache" / "generated"
    v_ib = torch.load(ref_cache / "imagebind_video.pth", weights_only=True)
    a_ib = torch.load(gen_cache / "imagebind_audio.pth", weights_only=True)
    v_sync = torch.load(ref_cache / "synchformer_video.pth", weights_only=True)
    a_sync = torch.load(gen_cache / "synchformer_audio.pth", weights_only=True)
    assert v_sync["c0"].shape == (14, 8, 64) and a_sync["c0"].shape == (14, 6, 64)
    assert set(a_sync) == {"c0", "c1"} and set(a_ib) == {"c0", "c1", "c2"}
    sims = [torch.cosine_similarity(v_ib[s], a_ib[s], dim=-1).item() for s in ("c0", "c1")]
    assert result.metrics.scores["ib_score"] == pytest.approx(float(np.mean(sims)), rel=1e-6)
    with torch.inference_mode():
        per_clip = [sfa.desync_offsets(sync, v_sync[s], a_sync[s]).abs().mean().item() for s in ("c0", "c1")]
    assert result.metrics.scores["desync"] == pytest.approx(float(np.mean(per_clip)), rel=1e-6)
    assert result.metrics.per_clip["c0"]["desync"] == pytest.approx(per_clip[0], rel=1e-6)
    # the videos' own audio tracks are the reference: their IB-score and DeSync are reported too
    assert result.reference_extra["desync"] is not None and result.reference_extra["ib_score"] is not None
