"""The built-in extractors wire the real feature networks into the caches as av-benchmark stores them.

The networks (PANNs Cnn14 16 kHz, VGGish, PaSST-S) are constructed with
random weights (their equivalence to the official modules is proven in their
own tests); what is checked here is our glue: each file's entry in each cache
equals the network's output on av-benchmark's preparation of that file
(channel mean, DC removal, resampler, crop), under av-benchmark's file names
and entry layout, for stereo 44.1 kHz and mono 16 kHz inputs, and the metrics
are computed from them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from media_factory import make_audio_file

from deepsound.audio import Audio
from deepsound.evaluation.builtin_models import PannsExtractor, PasstExtractor, VggishExtractor
from deepsound.evaluation.extractors import Settings
from deepsound.evaluation.runner import evaluate

pytest.importorskip("deepsound.models.eval")


@pytest.fixture(scope="module")
def networks():
    from deepsound.models.eval import Cnn14, PaSST, VGGish

    torch.manual_seed(0)
    return {"panns": Cnn14().eval(), "vggish": VGGish().eval(), "passt": PaSST().eval()}


def _write(folder: Path, seed: int, rate: int, channels: int) -> None:
    rng = np.random.RandomState(seed)
    wav = (0.2 * rng.randn(channels, int(rate * 1.5))).astype(np.float32)
    make_audio_file(folder / f"clip{seed % 10}.wav", Audio(wav, rate))


@pytest.mark.slow
def test_real_audio_networks_fill_the_caches(tmp_path, networks):
    from deepsound.evaluation.audio import prepare_for_features
    from deepsound.media import read_audio
    from deepsound.models.eval import panns_features, passt_features, vggish_features

    gen, ref = tmp_path / "gen", tmp_path / "ref"
    gen.mkdir()
    ref.mkdir()
    for i in range(3):
        _write(gen, 10 + i, 44100, 2)
        _write(ref, 20 + i, 16000, 1)
    settings = Settings(duration=1.0)
    extractors = {
        ("panns", "audio"): PannsExtractor(settings, networks["panns"], "random"),
        ("vggish", "audio"): VggishExtractor(settings, networks["vggish"], "random"),
        ("passt", "audio"): PasstExtractor(settings, networks["passt"], "random"),
    }
    result = evaluate(
        gen, ref, out_dir=tmp_path / "out", settings=settings, extractors=extractors,
        metrics=["fd_panns", "kl_panns", "fd_vgg", "fd_passt", "kl_passt"],
    )  # fmt: skip
    assert not result.failures
    cache = tmp_path / "out" / "cache" / "generated"
    audio = read_audio(gen / "clip1.wav")
    wav = torch.from_numpy(audio.waveform)
    w16 = prepare_for_features(wav, audio.sample_rate, 16000, 1.0)[None]
    w32 = prepare_for_features(wav, audio.sample_rate, 32000, 1.0)[None]
    assert w16.shape == (1, 16000)
    panns = torch.load(cache / "pann_features.pth", weights_only=True)
    expected = panns_features(networks["panns"], w16)
    for key in ("2048", "logits", "clipwise_output"):
        torch.testing.assert_close(panns["clip1"][key], expected[key][0], rtol=0, atol=0)
    vgg = torch.load(cache / "vggish_features.pth", weights_only=True)
    torch.testing.assert_close(vgg["clip1"], vggish_features(networks["vggish"], w16)[0], rtol=0, atol=0)
    assert vgg["clip1"].shape == (1, 128)
    passt = passt_features(networks["passt"], w32)
    embed = torch.load(cache / "passt_features_embed.pth", weights_only=True)
    logits = torch.load(cache / "passt_logits.pth", weights_only=True)
    torch.testing.assert_close(embed["clip1"], passt["features_embed"][0], rtol=0, atol=0)
    torch.testing.assert_close(logits["clip1"], passt["logits"][0], rtol=0, atol=0)
    assert list(panns) == ["clip0", "clip1", "clip2"]
    for key in ("fd_panns", "kl_panns", "fd_vgg", "fd_passt", "kl_passt"):
        assert result.metrics.scores[key] is not None
