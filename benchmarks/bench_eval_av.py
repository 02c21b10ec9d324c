"""Seconds per 10 s clip for the DeSync and IB-score models: ours beside av-benchmark's code.

Usage::

    PYTHONPATH=src:tools/goldens python benchmarks/bench_eval_av.py \
        [--av-benchmark DIR --imagebind DIR] [--clip VIDEO.mp4] [--repeat 3] [--threads 1]

Both sides run on the CPU with the same seeded weights and the same inputs
(the clip's audio resampled to 16 kHz once, its frames decoded once); the
official side needs its checkouts and torchaudio, and is left out without
them. Rows:

* ``sync audio``: Synchformer mel front end + audio branch (full size), 30 windows.
* ``desync head``: the offset head on the first and last 4.8 s (full size).
* ``ib audio``: ImageBind's 3 clips, Kaldi fbank and the full-size audio tower.
* ``ib video (narrow)``: ImageBind crops/clips and a *narrow* vision tower
  (64 wide, 2 blocks: the full ViT-H is too heavy for a CPU benchmark), so this
  row measures preprocessing and plumbing, not the full tower.
* ``decode``: our single-pass 0.5 fps + 25 fps decode (the official loader needs
  torio, which current torchaudio no longer ships; no official number).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from deepsound.models.eval import imagebind as ib
from deepsound.models.eval import synchformer_audio as sfa
from deepsound.testing.equivalence import fill_seeded

SEED = 1234


def timed(fn, repeat: int) -> float:
    fn()  # warm-up (allocations, kernel selection)
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - start)
    return statistics.median(runs)


def inputs(clip: Path | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(C, T) 16 kHz audio, (T,) mono 16 kHz, ImageBind uint8 frames (or synthetic ones)."""
    from av_benchmark_av import synthetic_frames, synthetic_wave

    if clip is None:
        wav = synthetic_wave(10.0, channels=2)
        return wav, wav.mean(0), synthetic_frames(5, 360, 480)
    from deepsound.evaluation.audio import load_for_imagebind, load_for_synchformer
    from deepsound.evaluation.video import decode_frames

    frames = decode_frames(clip, {"ib": 0.5}, 10.0)["ib"]
    return load_for_imagebind(clip), load_for_synchformer(clip, 10.0), frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--av-benchmark", type=Path, default=None)
    parser.add_argument("--imagebind", type=Path, default=None)
    parser.add_argument("--clip", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    wav_ib, wav_sync, frames = inputs(args.clip)
    rows: list[tuple[str, float, float | None]] = []

    # ---- ours
    cfg = sfa.SynchformerAVConfig(visual=sfa.SynchformerConfig(depth=1))  # the visual branch is not timed
    sync = fill_seeded(sfa.SynchformerAV(cfg), SEED).eval()
    from av_benchmark_av import IB_SMALL, synthetic_features

    vision = ib.TowerConfig(
        IB_SMALL["vision_embed_dim"], IB_SMALL["vision_num_blocks"], IB_SMALL["vision_num_heads"]
    )
    imagebind = fill_seeded(ib.ImageBindAV(ib.ImageBindConfig(vision=vision)), SEED).eval()
    from deepsound.evaluation.video import imagebind_clips, imagebind_transform

    vfeats = synthetic_features((30, 8, 768), 0.3)
    afeats = sfa.synchformer_audio_features(sync, wav_sync)
    ours = {
        "sync audio": timed(lambda: sfa.synchformer_audio_features(sync, wav_sync), args.repeat),
        "desync head": timed(lambda: sfa.desync_offsets(sync, vfeats, afeats), args.repeat),
        "ib audio": timed(lambda: ib.imagebind_features(imagebind, None, wav_ib), args.repeat),
        "ib video (narrow)": timed(
            lambda: ib.imagebind_features(imagebind, imagebind_clips(imagebind_transform(frames)), None),
            args.repeat,
        ),
    }
    if args.clip is not None:
        from deepsound.evaluation.video import decode_eval_video

        ours["decode"] = timed(lambda: decode_eval_video(args.clip, 10.0), args.repeat)

    # ---- official
    theirs: dict[str, float] = {}
    if args.av_benchmark is not None and args.imagebind is not None:
        theirs = official_times(args, wav_ib, wav_sync, frames, vfeats)

    for name, value in ours.items():
        rows.append((name, value, theirs.get(name)))
    print(f"threads={args.threads} repeat={args.repeat} clip={args.clip.name if args.clip else 'synthetic'}")
    print(
        f"| {'stage (per 10 s clip)':<22} | {'ours s':>8} | {'av-benchmark s':>14} | {'ours/official':>13} |"
    )
    print(f"|{'-' * 24}|{'-' * 10}|{'-' * 16}|{'-' * 15}|")
    for name, mine, other in rows:
        ref = f"{other:14.3f}" if other is not None else f"{'n/a':>14}"
        ratio = f"{mine / other:13.2f}" if other else f"{'':>13}"
        print(f"| {name:<22} | {mine:8.3f} | {ref} | {ratio} |")


def official_times(args, wav_ib, wav_sync, frames, vfeats) -> dict[str, float]:
    import av_benchmark_av as goldens

    goldens.import_official(args.av_benchmark, args.imagebind)
    import torchaudio
    from av_bench.data import audio_dataset
    from av_bench.data.video_dataset import VideoDataset
    from av_bench.extract import encode_audio_with_sync
    from av_bench.synchformer.synchformer import Synchformer, make_class_grid
    from extract_video import encode_video_with_imagebind
    from imagebind.models import imagebind_model
    from imagebind.models.imagebind_model import ModalityType

    out: dict[str, float] = {}
    with torch.inference_mode():
        model = fill_seeded(Synchformer().eval(), SEED)
        mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=16000, win_length=400, hop_length=160, n_fft=1024, n_mels=128
        )
        out["sync audio"] = timed(lambda: encode_audio_with_sync(model, wav_sync[None], mel), args.repeat)
        afeats = encode_audio_with_sync(model, wav_sync[None], mel)
        grid = make_class_grid(-2, 2, 21)

        def head() -> None:
            for part in (slice(None, 14), slice(-14, None)):
                logits = model.compare_v_a(vfeats[None, part], afeats[:, part])
                grid[torch.argmax(logits, dim=-1)]

        out["desync head"] = timed(head, args.repeat)
        ibm = fill_seeded(imagebind_model.ImageBindModel(**goldens.IB_SMALL).eval(), SEED)
        dataset = audio_dataset.ImageBindAudioDataset([])
        audio_dataset.torchaudio.load = lambda _p: (wav_ib.clone(), 16000)

        def ib_audio() -> None:
            clips = dataset.load_and_transform_audio_data("unused")
            ibm({ModalityType.AUDIO: clips})

        out["ib audio"] = timed(ib_audio, args.repeat)
        videos = VideoDataset([], duration_sec=10.0)

        def ib_video() -> None:
            x = torch.stack(videos.crop([videos.ib_transform(frames)]))
            encode_video_with_imagebind(ibm, x[None])

        out["ib video (narrow)"] = timed(ib_video, args.repeat)
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools" / "goldens"))
    main()
