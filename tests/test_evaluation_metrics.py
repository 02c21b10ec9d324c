"""The metrics equal av-benchmark's, computed by the official code from identical features.

Goldens: ``tests/data/evaluation/metrics_golden.json``, made by
``tools/goldens/av_benchmark_metrics.py`` from av-benchmark commit
050a5cdb9bbd1a6f8cbb9fdde076992a695e2501: it builds seeded feature caches
(:func:`synthetic_caches`, imported here so both sides use the very same
tensors), saves them in av-benchmark's files (and, for the "real" case, takes the
caches av-benchmark's own extraction wrote in ``tests/data/eval_audio/official_cache``
as the generated side), runs the official
``av_bench.evaluate.evaluate`` on the CPU with the official Synchformer filled
by ``fill_seeded(seed=3)``, and records the official numbers, the official
offset-head logits of every pair and half, and official ``compute_fd`` values
on small well- and ill-conditioned sets.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from deepsound.evaluation.metrics import (
    clean_sample_name,
    compute_metrics,
    desync,
    frechet_distance,
    inception_score,
    pair_cleaned,
)

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = json.loads((ROOT / "tests/data/evaluation/metrics_golden.json").read_text())
TOL = 1e-6


def _golden_module():
    spec = importlib.util.spec_from_file_location(
        "av_benchmark_metrics", ROOT / "tools/goldens/av_benchmark_metrics.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


goldens = _golden_module()


class ReplayHead:
    """The official offset head's logits, replayed batch by batch in the order DeSync asks for them."""

    def __init__(self) -> None:
        self.first = torch.tensor(GOLDEN["sync_logits_first"])
        self.last = torch.tensor(GOLDEN["sync_logits_last"])
        self.calls = 0

    def __call__(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        batch, half = divmod(self.calls, 2)
        self.calls += 1
        source = self.first if half == 0 else self.last
        return source[batch * 16 : batch * 16 + video.shape[0]]


def _check(scores: dict[str, float], golden: dict[str, float]) -> None:
    assert set(golden) <= set(scores), set(golden) - set(scores)
    for key, value in golden.items():
        if np.isnan(value):  # IS of fewer files than splits is NaN in av-benchmark too
            assert np.isnan(scores[key]), key
            continue
        assert abs(scores[key] - value) <= TOL * abs(value), (key, scores[key], value)


def test_all_metrics_equal_official_on_seeded_caches():
    pred, gt = goldens.synthetic_caches("small")
    result = compute_metrics(pred, gt, ReplayHead())
    _check(result.official(), GOLDEN["metrics"]["small"])
    # the paper's keys carry the same numbers
    assert result.scores["fd_vgg"] == result.official()["FD-VGG"]
    assert result.scores["desync"] == result.official()["DeSync"]
    assert result.pairs["kl_panns"] == 8 and result.pairs["kl_passt"] == 23


@pytest.mark.slow
def test_all_metrics_equal_official_at_full_feature_size():
    pred, gt = goldens.synthetic_caches("full")
    _check(compute_metrics(pred, gt, ReplayHead()).official(), GOLDEN["metrics"]["full"])


@pytest.mark.slow
def test_metrics_on_features_extracted_by_av_benchmark():
    """Generated side: caches av-benchmark's extraction wrote for real and synthetic clips."""
    if "real" not in GOLDEN["metrics"]:
        pytest.skip("golden made without the official audio caches")
    pred, gt = goldens.real_caches()
    _check(compute_metrics(pred, gt).official(), GOLDEN["metrics"]["real"])


@pytest.mark.parametrize("name", ["well", "rank_deficient", "float64"])
def test_frechet_distance_equals_official(name):
    a, b = goldens.fd_sets()[name]
    assert abs(frechet_distance(a, b) - GOLDEN["fd"][name]) <= TOL * abs(GOLDEN["fd"][name])


def test_frechet_distance_is_zero_for_identical_sets_and_grows_with_shift():
    x = np.random.RandomState(0).randn(50, 4).astype(np.float32)
    assert abs(frechet_distance(x, x)) < 1e-4
    # a mean shift of d in every one of 4 dims adds 4 d^2
    assert frechet_distance(x + 1.0, x) == pytest.approx(4.0, rel=1e-4)


def test_clean_sample_name_maps_vggsound_generated_names():
    assert clean_sample_name("000000014_zxpo56cpUBU_000007-0") == "zxpo56cpUBU_000007"
    assert clean_sample_name("zxpo56cpUBU_000007-0") == "zxpo56cpUBU_000007"
    assert clean_sample_name("Y---g-f_I2yQ_000001_0") == "---g-f_I2yQ_000001"
    assert clean_sample_name("zxpo56cpUBU_000007") == "zxpo56cpUBU_000007"
    assert clean_sample_name("my_clip") == "my_clip"


def test_pairing_leaves_out_the_unpaired_on_both_sides():
    pairing = pair_cleaned(
        {"a": 1, "zxpo56cpUBU_000007-0": 2, "x": 3}, {"a": 0, "zxpo56cpUBU_000007": 0, "y": 0}
    )
    assert pairing.pred_keys == ["a", "zxpo56cpUBU_000007-0"]
    assert pairing.gt_keys == ["a", "zxpo56cpUBU_000007"]
    assert pairing.unpaired == ["x", "y"]


def test_inception_score_depends_on_order_through_the_seeded_permutation():
    logits = torch.randn(40, 10, generator=torch.Generator().manual_seed(1)) * 3
    mean, _ = inception_score(logits)
    mean_rev, _ = inception_score(logits.flip(0))
    assert mean != mean_rev  # the official ordering matters: caches are kept in sorted stem order
    assert inception_score(logits, seed=None, splits=1)[0] == pytest.approx(
        inception_score(logits.flip(0), seed=None, splits=1)[0], rel=1e-12
    )


def test_desync_takes_first_and_last_windows_and_grid_offsets():
    seen = []

    def head(v, a):
        seen.append((v[0, 0, 0, 0].item(), a.shape[1]))
        logits = torch.zeros(v.shape[0], 21)
        logits[:, 0 if len(seen) % 2 else 15] = 1.0  # -2.0 s for the first half, +1.0 s for the last
        return logits

    video = torch.arange(20.0).view(1, 20, 1, 1).expand(3, 20, 8, 4).contiguous()
    audio = torch.zeros(3, 20, 6, 4)
    mean, offsets = desync(video, audio, head)
    assert [s[0] for s in seen] == [0.0, 6.0]  # segments 0..13, then 6..19
    assert all(s[1] == 14 for s in seen)
    assert offsets == [(2.0, pytest.approx(1.0))] * 3
    assert mean == pytest.approx(1.5)
    with pytest.raises(ValueError, match="14 segments"):
        desync(video[:, :10], audio[:, :10], head)


def test_desync_with_our_offset_head_equals_official():
    """Our Synchformer offset head (projections + transformer, under the checkpoint's names),
    filled with the golden's seeded weights, gives the official logits and the official DeSync.
    The feature trunks are left out: DeSync starts from cached features."""
    sfa = pytest.importorskip("deepsound.models.eval.synchformer_audio")
    from torch import nn

    from deepsound.testing.equivalence import fill_seeded, relative_l2

    class Head(nn.Module):
        compare_v_a = sfa.SynchformerAV.compare_v_a

        def __init__(self, cfg):  # noqa: ANN001
            super().__init__()
            self.vproj, self.aproj = nn.Linear(cfg.dim, cfg.dim), nn.Linear(cfg.dim, cfg.dim)
            self.transformer = sfa.OffsetTransformer(cfg)

    model = fill_seeded(Head(sfa.SynchformerAVConfig()), GOLDEN["sync_seed"]).eval()
    pred, gt = goldens.synthetic_caches("small")
    with torch.inference_mode():
        result = compute_metrics(pred, gt, model.compare_v_a)
        pairing = pair_cleaned(pred["synchformer_audio.pth"], gt["synchformer_video.pth"])
        audio, video = pairing.stack(pred["synchformer_audio.pth"], gt["synchformer_video.pth"])
        first = model.compare_v_a(video[:, :14], audio[:, :14])
    assert relative_l2(first, torch.tensor(GOLDEN["sync_logits_first"])) <= 1e-5
    assert result.scores["desync"] == GOLDEN["metrics"]["small"]["DeSync"]
