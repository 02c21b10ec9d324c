"""Seconds per 10-s clip for av-benchmark's audio feature models: ours beside the official code.

Same machine, same input (a synthetic 10.5 s stereo 44.1 kHz WAV), random weights on
both sides (speed does not depend on the values), batch size 1 as av-benchmark
extracts ground truth. Stages: audio loading (decode, mono, DC, resample, crop) at
16 and 32 kHz, PANNs Cnn14, VGGish (front end + network), PaSST (pad + mel + network).
The official side needs av-benchmark and hear21passt checkouts and their Python
dependencies (torchaudio, librosa, torchlibrosa); it is constructed and run through
the same stand-ins as ``tools/goldens/av_benchmark_audio.py``.

    python benchmarks/bench_eval_audio.py --official AV_BENCHMARK PASST_HEAR21 [--device cuda] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests"), str(ROOT / "tools" / "goldens")]

from eval_audio_support import synthetic_clips  # noqa: E402

from deepsound.evaluation.audio import load_for_features  # noqa: E402
from deepsound.models.eval import Cnn14, PaSST, VGGish, panns_features, passt_features, vggish_features  # noqa: E402


def _time(fn: Callable[[], object], repeat: int, device: str) -> float:
    fn()  # warm-up (kernel selection, caches)
    times = []
    for _ in range(repeat):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ours(clip: Path, device: str, repeat: int) -> dict[str, float]:
    panns, vgg, passt = Cnn14().eval().to(device), VGGish().eval().to(device), PaSST().eval().to(device)
    w16 = load_for_features(clip, 16000)[None]
    w32 = load_for_features(clip, 32000)[None]
    return {
        "load 16 kHz": _time(lambda: load_for_features(clip, 16000), repeat, "cpu"),
        "load 32 kHz": _time(lambda: load_for_features(clip, 32000), repeat, "cpu"),
        "PANNs": _time(lambda: panns_features(panns, w16), repeat, device),
        "VGGish": _time(lambda: vggish_features(vgg, w16), repeat, device),
        "PaSST": _time(lambda: passt_features(passt, w32), repeat, device),
    }


def official(clip: Path, device: str, repeat: int, avb: Path, hear: Path) -> dict[str, float]:
    sys.path[:0] = [str(avb.resolve()), str(hear.resolve())]
    from av_benchmark_audio import NoLoad, stub_modules

    stub_modules()
    # Cnn14's constructor fetches its files unless they exist; give it an empty stand-in home.
    home = Path(tempfile.mkdtemp(prefix="bench-home-"))
    (home / ".cache" / "audioldm_eval" / "ckpt").mkdir(parents=True)
    (home / ".cache" / "audioldm_eval" / "ckpt" / "Cnn14_mAP=0.431.pth").write_bytes(b"")
    os.environ["HOME"] = str(home)
    from av_bench.data.audio_dataset import AudioDataset
    from av_bench.panns import Cnn14 as OfficialCnn14
    from av_bench.vggish.vggish import VGGish as OfficialVGGish
    from hear21passt.base import get_basic_model

    with NoLoad():
        panns = (
            OfficialCnn14(
                features_list=["2048", "logits"],
                sample_rate=16000,
                window_size=512,
                hop_size=160,
                mel_bins=64,
                fmin=50,
                fmax=8000,
                classes_num=527,
            )
            .eval()
            .to(device)
        )
        vgg = OfficialVGGish(postprocess=False, device=device).eval()
    import hear21passt.models.passt as passt_module

    original = passt_module.passt_s_swa_p16_128_ap476
    passt_module.passt_s_swa_p16_128_ap476 = lambda pretrained=False, **kw: original(False, **kw)
    passt = get_basic_model(mode="all").eval().to(device)
    ds16 = AudioDataset([clip], audio_length=10.0, sr=16000)
    ds32 = AudioDataset([clip], audio_length=10.0, sr=32000)
    w16 = ds16[0][0].float().to(device)
    w32 = ds32[0][0].float()
    w32 = (
        w32[..., :320000]
        if w32.size(-1) >= 320000
        else torch.nn.functional.pad(w32, (0, 320000 - w32.size(-1)))
    )
    w32 = w32.to(device)

    with torch.inference_mode():
        return {
            "load 16 kHz": _time(lambda: ds16[0], repeat, "cpu"),
            "load 32 kHz": _time(lambda: ds32[0], repeat, "cpu"),
            "PANNs": _time(lambda: panns(w16), repeat, device),
            "VGGish": _time(lambda: vgg(w16.cpu()), repeat, device),
            "PaSST": _time(lambda: passt(w32), repeat, device),
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--official", nargs=2, type=Path, metavar=("AV_BENCHMARK", "PASST_HEAR21"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    clip = synthetic_clips(Path(tempfile.mkdtemp(prefix="bench-eval-audio-")))[0]
    mine = ours(clip, args.device, args.repeat)
    ref = official(clip, args.device, args.repeat, *args.official) if args.official else {}
    print(
        f"device {args.device}, {args.threads} CPU thread(s), median of {args.repeat}; seconds per 10 s clip\n"
    )
    print("| stage | DeepSound | av-benchmark | ratio |\n|---|---|---|---|")
    for stage, t in mine.items():
        r = ref.get(stage)
        ratio = f"{t / r:.2f}" if r else "-"
        print(f"| {stage} | {t:.4f} | {r:.4f} | {ratio} |" if r else f"| {stage} | {t:.4f} | - | - |")


if __name__ == "__main__":
    main()
