"""Goldens for the audio-visual evaluation models (Synchformer DeSync, ImageBind) from the official code.

Usage (the official checkouts at the pinned commits; the official code needs torchaudio)::

    PYTHONPATH=src python tools/goldens/av_benchmark_av.py AV_BENCHMARK_DIR IMAGEBIND_DIR \
        [--media /path/to/media] [--out tests/data/eval_av] [--only WHICH]

``WHICH``: ``synchformer`` or ``imagebind`` (the default run makes both), or one of the
heavy full-size goldens made only when named: ``imagebind_full_vision`` (ViT-H/14, about
3.5 GB and two minutes on a CPU) and ``synchformer_video`` (needs ``--media``).

Writes into ``--out``:

* ``synchformer_manifest.json``: name -> shape of every tensor of the official
  ``Synchformer()`` (the layout of ``synchformer_state_dict.pth``).
* ``imagebind_manifest.json``: the vision and audio entries of the official
  ``imagebind_huge()`` state dict (preprocessors, trunks, heads, postprocessors).
* ``synchformer_golden.pt`` / ``imagebind_golden.pt`` (and the two heavy ones): inputs
  described by formulas (rebuilt identically by the tests), official outputs, at seeded
  weights (``deepsound.testing.equivalence.fill_seeded``: same names -> same weights).

The official modules and their preprocessing make every expected value. The one
exception is *decoding* the real clip: torchaudio 2.11 no longer decodes files and torio
is gone, so its audio comes from PyAV (the same FFmpeg decoders) and its frames from
``deepsound.evaluation.video.decode_frames`` (FFmpeg's own ``fps`` filter graph, as torio
builds it); everything after decoding is the official code.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import types
from pathlib import Path

import numpy as np
import torch

AV_BENCHMARK_COMMIT = (
    "050a5cdb9bbd1a6f8cbb9fdde076992a695e2501"  # hkchengrex/av-benchmark, "Update README.md"
)
IMAGEBIND_COMMIT = "9989650c87d393d7e8c144194182cbf124cd03a0"  # hkchengrex/ImageBind, "Update pyproject.toml"
PYTORCHVIDEO_COMMIT = "ae9cfc6e62ca49eb9721a7a56e1e13e348ad21dc"  # pinned by ImageBind
SEED = 1234
SR = 16000


# ----------------------------------------------------------------------------- shared inputs
def synthetic_wave(seconds: float, channels: int = 1, rate: int = SR) -> torch.Tensor:
    """(channels, T) float32: tones, a chirp and bursts; no RNG so the tests rebuild it exactly."""
    t = np.arange(int(round(seconds * rate)), dtype=np.float64) / rate
    rows = []
    for c in range(channels):
        x = 0.3 * np.sin(2 * np.pi * (440 + 110 * c) * t)
        x += 0.2 * np.sin(2 * np.pi * (200 * t + 300 * t * t)) * ((t % 1.0) < 0.45)
        x += 0.1 * np.sign(np.sin(2 * np.pi * 3.0 * t)) * np.sin(2 * np.pi * 2500 * t)
        x += 0.05 + 0.01 * c  # a DC offset: the front ends remove it (or not) as the official do
        rows.append(x)
    return torch.from_numpy(np.stack(rows)).float()


def synthetic_features(shape: tuple[int, ...], phase: float) -> torch.Tensor:
    """Deterministic feature-like tensor for the offset head."""
    n = int(np.prod(shape))
    i = np.arange(n, dtype=np.float64)
    x = np.sin(i * 0.0137 + phase) + 0.5 * np.cos(i * 0.00071 * (1 + phase))
    return torch.from_numpy(x.reshape(shape)).float()


def synthetic_frames(count: int, height: int, width: int, phase: float = 0.0) -> torch.Tensor:
    """(count, 3, H, W) uint8 moving gradients and a bright square."""
    y = np.arange(height)[:, None]
    x = np.arange(width)[None, :]
    out = np.zeros((count, 3, height, width), dtype=np.uint8)
    for k in range(count):
        base = (x * 1.3 + y * 0.7 + 9 * k + 40 * phase) % 256
        out[k, 0] = base
        out[k, 1] = (255 - base) * ((x // 16 + y // 16 + k) % 2)
        out[k, 2] = (x * y // 64 + 5 * k) % 256
        cx = int((k * 13 + 30 * phase) % max(width - 40, 1))
        out[k, :, 20:60, cx : cx + 40] = 250
    return torch.from_numpy(out)


def decode_audio(path: Path) -> tuple[torch.Tensor, int]:
    """(C, T) float32 at the file's rate (PyAV decodes with the same FFmpeg decoders as torchaudio.load)."""
    from deepsound.media import read_audio

    audio = read_audio(path)
    return torch.from_numpy(audio.waveform.copy()), audio.sample_rate


# ----------------------------------------------------------------------------- official imports
def import_official(av_dir: Path, ib_dir: Path) -> None:
    """Put the checkouts on the path; stub the transformers helpers the old AST copy imports."""
    sys.path[:0] = [str(av_dir), str(ib_dir)]  # extract_video.py sits at the top of av-benchmark
    import transformers.pytorch_utils as pu
    import transformers.utils as tu

    for name in ("find_pruneable_heads_and_indices", "prune_linear_layer"):
        if not hasattr(pu, name):
            setattr(pu, name, lambda *a, **k: None)  # only used for head pruning
    for name in (
        "add_code_sample_docstrings",
        "add_start_docstrings",
        "add_start_docstrings_to_model_forward",
    ):
        if not hasattr(tu, name):
            setattr(tu, name, lambda *a, **k: lambda f: f)
    # imagebind/__init__ imports its data helpers (pkg_resources, pytorchvideo): load the models only
    pkg = types.ModuleType("imagebind")
    pkg.__path__ = [str(ib_dir / "imagebind")]
    sys.modules["imagebind"] = pkg
    # av_bench.extract imports every extraction model (CLAP, PaSST ...); only its functions are used here
    stub = types.ModuleType("av_bench.extraction_models")
    stub.ExtractionModels = None
    sys.modules["av_bench.extraction_models"] = stub
    if importlib.util.find_spec("torio") is None:  # VideoDataset's decoder; only its transforms are used
        torio, io = types.ModuleType("torio"), types.ModuleType("torio.io")
        io.StreamingMediaDecoder, torio.io = None, io
        sys.modules.update({"torio": torio, "torio.io": io})
    # ImageBind pins pytorchvideo at PYTORCHVIDEO_COMMIT; PyPI's 0.1.5 predates that commit's fix of
    # the clip spacing (max_start / 3 there, max_start / 2 at the pin), so always use the pinned code.
    _install_clip_sampler_stub()
    # transformers 5 dropped PreTrainedModel.get_head_mask, which the old AST copy calls (no head mask)
    from av_bench.synchformer.hf_src import modeling_ast

    if not hasattr(modeling_ast.ASTPreTrainedModel, "get_head_mask"):
        modeling_ast.ASTPreTrainedModel.get_head_mask = lambda self, mask, n: [None] * n


def _install_clip_sampler_stub() -> None:
    """``ConstantClipsPerVideoSampler`` of facebookresearch/pytorchvideo at PYTORCHVIDEO_COMMIT.

    Transcribed (20 lines of Fractions) so that the official ``ImageBindAudioDataset`` runs
    unchanged with the sampler ImageBind's pyproject pins, whatever pytorchvideo is installed.
    """
    from fractions import Fraction

    class ConstantClipsPerVideoSampler:
        def __init__(self, clip_duration, clips_per_video, augs_per_clip=1):
            self._clip_duration = Fraction(clip_duration)
            self._clips_per_video = clips_per_video
            self._augs_per_clip = augs_per_clip
            self._current_clip_index = 0
            self._current_aug_index = 0

        def __call__(self, last_clip_time, video_duration, annotation):
            max_possible_clip_start = Fraction(max(video_duration - self._clip_duration, 0))
            uniform_clip = Fraction(max_possible_clip_start, max(self._clips_per_video - 1, 1))
            clip_start_sec = uniform_clip * self._current_clip_index
            clip_index, aug_index = self._current_clip_index, self._current_aug_index
            self._current_aug_index += 1
            if self._current_aug_index >= self._augs_per_clip:
                self._current_clip_index += 1
                self._current_aug_index = 0
            is_last_clip = False
            if (
                self._current_clip_index >= self._clips_per_video
                or uniform_clip * self._current_clip_index > max_possible_clip_start
            ):
                self._current_clip_index = 0
                is_last_clip = True
            if is_last_clip:
                self._current_clip_index = 0
                self._current_aug_index = 0
            return (clip_start_sec, clip_start_sec + self._clip_duration, clip_index, aug_index, is_last_clip)

    pkg = types.ModuleType("pytorchvideo")
    data = types.ModuleType("pytorchvideo.data")
    sampling = types.ModuleType("pytorchvideo.data.clip_sampling")
    sampling.ConstantClipsPerVideoSampler = ConstantClipsPerVideoSampler
    pkg.data, data.clip_sampling = data, sampling
    sys.modules.update(
        {"pytorchvideo": pkg, "pytorchvideo.data": data, "pytorchvideo.data.clip_sampling": sampling}
    )


# ----------------------------------------------------------------------------- Synchformer
def synchformer_goldens(out: Path, media: Path | None) -> None:
    import torchaudio
    from av_bench.data.audio_dataset import pad_or_truncate  # noqa: F401  (imported by extract)
    from av_bench.extract import encode_audio_with_sync
    from av_bench.synchformer.synchformer import Synchformer, make_class_grid

    from deepsound.testing.equivalence import fill_seeded, parameter_manifest

    torch.manual_seed(0)
    model = Synchformer().eval()
    (out / "synchformer_manifest.json").write_text(
        json.dumps(parameter_manifest(model.state_dict()), indent=0)
    )
    fill_seeded(model, SEED)
    mel = torchaudio.transforms.MelSpectrogram(
        sample_rate=16000, win_length=400, hop_length=160, n_fft=1024, n_mels=128
    )
    grid = make_class_grid(-2, 2, 21)
    golden: dict[str, object] = {"seed": SEED, "commit": AV_BENCHMARK_COMMIT, "cases": {}}

    def run(name: str, wav16: torch.Tensor, vphase: float) -> None:
        with torch.inference_mode():
            afeats = encode_audio_with_sync(model, wav16[None], mel)[0]  # (S, 6, 768)
            s = afeats.shape[0]
            vfeats = synthetic_features((s, 8, 768), vphase)
            first = model.compare_v_a(vfeats[None, :14], afeats[None, :14])
            last = model.compare_v_a(vfeats[None, -14:], afeats[None, -14:])
        logits = torch.cat([first, last])
        golden["cases"][name] = {
            "segments": s,
            "vphase": vphase,
            "afeats_rows": afeats[[0, s // 2, s - 1]].clone(),
            "afeats_norm": afeats.double().norm().item(),
            "afeats_sum": afeats.double().sum().item(),
            "logits": logits.clone(),
            "offsets": grid[logits.argmax(-1)].clone(),
        }
        print(name, s, golden["cases"][name]["offsets"].tolist())

    # synthetic: 10 s mono (30 windows) and 6 s (16 windows: first and last 4.8 s differ)
    run("synthetic_10s", synthetic_wave(10.0)[0], 0.3)
    run("synthetic_6s", synthetic_wave(6.0)[0], 1.1)
    # a 44.1 kHz stereo source: channel mean then the transform resampler, as SynchformerAudioDataset
    stereo = synthetic_wave(10.0, channels=2, rate=44100)
    wav = torchaudio.transforms.Resample(44100, 16000)(stereo.mean(0))[:160000]
    run("synthetic_stereo44k", wav, 0.7)
    if media is not None and (media / "1QBsc_IXg8U_000750.mp4").is_file():
        raw, rate = decode_audio(media / "1QBsc_IXg8U_000750.mp4")
        wav = torchaudio.transforms.Resample(rate, 16000)(raw.mean(0))[:160000]
        run("real_1QBsc", wav, 0.5)
    torch.save(golden, out / "synchformer_golden.pt")


# ----------------------------------------------------------------------------- ImageBind
IB_SMALL = dict(  # the real audio tower, a narrow vision tower; other modalities minimal (unused)
    vision_embed_dim=64, vision_num_blocks=2, vision_num_heads=4, out_embed_dim=1024,
    text_embed_dim=32, text_num_blocks=1, text_num_heads=4,
    depth_embed_dim=32, depth_num_blocks=1, depth_num_heads=4,
    thermal_embed_dim=32, thermal_num_blocks=1, thermal_num_heads=4,
    imu_embed_dim=32, imu_num_blocks=1, imu_num_heads=4,
)  # fmt: skip
IB_MODALITIES = ("vision", "audio")


def imagebind_manifest(out: Path) -> None:
    """Every vision/audio tensor of the official ``imagebind_huge()``, built on the meta device."""
    from imagebind.models import imagebind_model

    from deepsound.testing.equivalence import parameter_manifest

    linspace = torch.linspace
    torch.linspace = lambda *a, **k: linspace(*a, **{**k, "device": "cpu"})  # drop-path rates use .item()
    try:
        with torch.device("meta"):
            model = imagebind_model.imagebind_huge(pretrained=False)
    finally:
        torch.linspace = linspace
    state = {k: v for k, v in model.state_dict().items() if any(f".{m}." in k for m in IB_MODALITIES)}
    (out / "imagebind_manifest.json").write_text(json.dumps(parameter_manifest(state), indent=0))
    print("imagebind manifest", len(state), "of", len(model.state_dict()))


def imagebind_goldens(out: Path, media: Path | None) -> None:
    import torchaudio
    from av_bench.data import audio_dataset
    from av_bench.data.video_dataset import VideoDataset
    from extract_video import encode_video_with_imagebind
    from imagebind.models import imagebind_model
    from imagebind.models.imagebind_model import ModalityType

    from deepsound.testing.equivalence import fill_seeded

    imagebind_manifest(out)
    torch.manual_seed(0)
    model = fill_seeded(imagebind_model.ImageBindModel(**IB_SMALL), SEED).eval()
    dataset = audio_dataset.ImageBindAudioDataset([])
    videos = VideoDataset([], duration_sec=10.0)
    golden: dict[str, object] = {
        "seed": SEED,
        "commit": IMAGEBIND_COMMIT,
        "config": IB_SMALL,
        "audio": {},
        "video": {},
    }

    def audio_case(name: str, wave: torch.Tensor, rate: int) -> None:
        audio_dataset.torchaudio.load = lambda _path: (wave.clone(), rate)  # the dataset reads a file
        clips = dataset.load_and_transform_audio_data("unused")  # (1, 3, 1, 128, 204)
        with torch.inference_mode():
            emb = model({ModalityType.AUDIO: clips})[ModalityType.AUDIO][0]
        golden["audio"][name] = {
            "clips_sub": clips[0][:, :, ::8, ::4].clone(),  # a subsample keeps the file small
            "clips_norm": clips[0].double().norm().item(),
            "embedding": emb.clone(),
        }
        print(name, tuple(clips.shape), float(emb.norm()))

    def video_case(name: str, frames: torch.Tensor) -> None:
        x = torch.stack(videos.crop([videos.ib_transform(frames)]))  # (3, T, C, 224, 224)
        with torch.inference_mode():
            emb = model_video(x[None])[0]
        golden["video"][name] = {"frames_shape": list(frames.shape), "embedding": emb.clone()}
        print(name, tuple(x.shape), float(emb.norm()))

    def model_video(x: torch.Tensor) -> torch.Tensor:
        return encode_video_with_imagebind(model, x)

    audio_case("stereo16k_10s", synthetic_wave(10.0, channels=2), 16000)
    audio_case("mono16k_4s", synthetic_wave(4.0), 16000)  # clips overlap: in-place DC removal shows
    audio_case("mono16k_1.5s", synthetic_wave(1.5), 16000)  # shorter than a clip: padded fbanks
    audio_case("stereo44k_8s", synthetic_wave(8.0, channels=2, rate=44100), 44100)
    video_case("landscape", synthetic_frames(5, 180, 320))
    video_case("portrait", synthetic_frames(3, 300, 200, phase=0.5))
    if media is not None and (media / "1QBsc_IXg8U_000750.mp4").is_file():
        from deepsound.evaluation.video import decode_frames

        clip = media / "1QBsc_IXg8U_000750.mp4"
        raw, rate = decode_audio(clip)
        audio_case("real_1QBsc", raw, rate)
        video_case("real_1QBsc", decode_frames(clip, {"ib": 0.5}, 10.0)["ib"])
    torch.save(golden, out / "imagebind_golden.pt")
    del torchaudio


IB_FULL_VISION = dict(  # the real ViT-H vision tower; other towers minimal
    vision_embed_dim=1280, vision_num_blocks=32, vision_num_heads=16, out_embed_dim=1024,
    audio_embed_dim=48, audio_num_blocks=1, audio_num_heads=4,
    text_embed_dim=32, text_num_blocks=1, text_num_heads=4,
    depth_embed_dim=32, depth_num_blocks=1, depth_num_heads=4,
    thermal_embed_dim=32, thermal_num_blocks=1, thermal_num_heads=4,
    imu_embed_dim=32, imu_num_blocks=1, imu_num_heads=4,
)  # fmt: skip


def imagebind_full_vision_golden(out: Path) -> None:
    """The full-size vision tower on one 2-frame clip, centre crop (about 3 GB, a minute on a CPU)."""
    from av_bench.data.video_dataset import VideoDataset
    from extract_video import encode_video_with_imagebind
    from imagebind.models import imagebind_model

    from deepsound.testing.equivalence import fill_seeded

    torch.manual_seed(0)
    model = fill_seeded(imagebind_model.ImageBindModel(**IB_FULL_VISION), SEED).eval()
    videos = VideoDataset([], duration_sec=10.0)
    frames = synthetic_frames(2, 240, 320, phase=0.25)
    x = torch.stack(videos.crop([videos.ib_transform(frames)]))[1:2]  # centre crop: (1, 2, C, H, W)
    with torch.inference_mode():
        emb = encode_video_with_imagebind(model, x[None])[0]
    torch.save(
        {"seed": SEED, "config": IB_FULL_VISION, "embedding": emb.clone()},
        out / "imagebind_full_vision_golden.pt",
    )
    print("full vision", float(emb.norm()))


def synchformer_video_golden(out: Path, media: Path) -> None:
    """Full-size visual branch on the real clip's first and last 16-frame windows (official transform)."""
    from av_bench.data.video_dataset import VideoDataset
    from av_bench.synchformer.synchformer import Synchformer

    from deepsound.evaluation.video import decode_frames
    from deepsound.testing.equivalence import fill_seeded

    torch.manual_seed(0)
    model = fill_seeded(Synchformer().eval(), SEED)
    frames = decode_frames(media / "1QBsc_IXg8U_000750.mp4", {"sync": 25.0}, 10.0)["sync"]
    x = VideoDataset([], duration_sec=10.0).sync_transform(frames)  # (250, 3, 224, 224)
    windows = torch.stack([x[0:16], x[232:248]])[None]  # windows 0 and 29: (1, 2, 16, C, H, W)
    with torch.inference_mode():
        feats = model.extract_vfeats(windows)[0]  # (2, 8, 768)
    golden = {
        "seed": SEED,
        "frames_norm": x.double().norm().item(),
        "frames_sub": x[::25, :, ::16, ::16].clone(),
        "windows": [0, 29],
        "features": feats.clone(),
    }
    torch.save(golden, out / "synchformer_video_golden.pt")
    print("sync video", tuple(feats.shape), float(feats.norm()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("av_benchmark", type=Path)
    parser.add_argument("imagebind", type=Path)
    parser.add_argument("--media", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=Path("tests/data/eval_av"))
    parser.add_argument(
        "--only",
        choices=("synchformer", "imagebind", "imagebind_full_vision", "synchformer_video"),
        default=None,
    )
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    import_official(args.av_benchmark, args.imagebind)
    if args.only in (None, "synchformer"):
        synchformer_goldens(args.out, args.media)
    if args.only in (None, "imagebind"):
        imagebind_goldens(args.out, args.media)
    if args.only == "synchformer_video":  # heavy: only when asked for
        synchformer_video_golden(args.out, args.media)
    if args.only == "imagebind_full_vision":  # heavy: only when asked for
        imagebind_full_vision_golden(args.out)


if __name__ == "__main__":
    main()
