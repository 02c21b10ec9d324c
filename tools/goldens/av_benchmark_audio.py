"""Goldens for the audio evaluation models, made by running av-benchmark's own extraction.

Usage (in an environment with torchaudio, librosa and torchlibrosa)::

    python tools/goldens/av_benchmark_audio.py AV_BENCHMARK_CHECKOUT PASST_HEAR21_CHECKOUT \
        [--media /path/to/1QBsc_IXg8U_000750.mp4] [--skip-full]

What it does, in order:

1. Builds the official modules (av-benchmark's ``Cnn14`` and ``VGGish``, hear21passt's
   ``get_basic_model``) with their weight loading suppressed, and writes manifests of
   every tensor name and shape (``*_manifest.json``).
2. Fills seeded weights (``tests/eval_audio_support.seeded_state``; PANNs' STFT and mel
   tensors keep their constructed values, as the published file stores them) and saves
   them where and how the official code reads them: ``{"model": sd}`` under
   ``$HOME/.cache/audioldm_eval/ckpt/``, the torch-hub VGGish state dict, and the
   PaSST file under ``$TORCH_HOME/hub/checkpoints/``. Nothing is downloaded.
3. Runs ``av_bench.extract.extract`` (batch size 1, CPU, 10 s, video and CLAP parts
   skipped) on the clips: the synthetic ones of ``synthetic_clips``, an espeak-ng
   sentence (committed as ``speech.wav``) and, when given, a real clip decoded to a
   float WAV. The caches it writes are the goldens (``official_cache/``).
4. Records torchaudio's resamplers (both kernel precisions) on short signals, the
   prepared 16/32 kHz waveforms' heads and lengths, PANNs' front-end tensors, and a
   reduced PaSST (official class, 2 blocks of width 64) for the fast tests.

Stand-ins, all for parts that the audio features never reach: modules for CLAP,
ImageBind, pytorchvideo and Synchformer (video-side models), ``resampy`` (VGGish only
calls it off 16 kHz, never here), and ``torchaudio.load`` (its 2.9+ releases need
torchcodec) replaced by soundfile, which returns the same ``int / 32768`` floats.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

AV_BENCHMARK_COMMIT = "050a5cd"  # hkchengrex/av-benchmark main, "Update README.md"
PASST_HEAR21_COMMIT = "1ab7789"  # hkchengrex/passt_hear21, "add pyproject.toml; ..."

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

from eval_audio_support import DATA, SEED, seeded_state, synthetic_clips  # noqa: E402

from deepsound.media import read_audio  # noqa: E402
from deepsound.testing.equivalence import parameter_manifest  # noqa: E402

SPEECH_TEXT = "The quick brown fox jumps over the lazy dog near the river bank."


def stub_modules() -> None:
    class _Dummy(torch.nn.Module):
        def __init__(self, *args, **kwargs):
            super().__init__()

        def load_ckpt(self, *args, **kwargs):
            return None

        def load_state_dict(self, *args, **kwargs):
            return None

    def module(name: str, **attrs) -> None:
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        sys.modules[name] = mod

    module("laion_clap", CLAP_Module=_Dummy)
    module("msclap", CLAP=_Dummy)
    module("imagebind")
    module("imagebind.models")
    module(
        "imagebind.models.imagebind_model",
        imagebind_huge=lambda **kw: _Dummy(),
        ModalityType=types.SimpleNamespace(AUDIO="audio", VISION="vision"),
    )
    module("pytorchvideo")
    module("pytorchvideo.data")
    module("pytorchvideo.data.clip_sampling", ConstantClipsPerVideoSampler=object)
    module("resampy", resample=None)
    module("av_bench.synchformer", Synchformer=_Dummy)
    module("av_bench.synchformer.synchformer", Synchformer=_Dummy)

    import torchaudio

    def load(path, *args, **kwargs):
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        return torch.from_numpy(np.ascontiguousarray(data.T)), rate

    torchaudio.load = load


class NoLoad:
    """Construct official modules without their checkpoint reads."""

    def __enter__(self):
        self._load, self._lsd = torch.load, torch.nn.Module.load_state_dict
        torch.load = lambda *a, **k: {"model": {}}
        torch.nn.Module.load_state_dict = lambda self, *a, **k: None
        self._hub = torch.hub.load
        torch.hub.load = lambda *a, **k: torch.nn.Module()

    def __exit__(self, *exc):
        torch.load, torch.nn.Module.load_state_dict = self._load, self._lsd
        torch.hub.load = self._hub


def _save_json(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n", encoding="utf-8")


def _speech(folder: Path) -> Path | None:
    """The espeak-ng sentence, made once and committed (FLAC) so every run reads the same samples."""
    target = DATA / "speech.flac"
    if not target.exists():
        raw = folder / "espeak.wav"
        try:
            subprocess.run(
                ["espeak-ng", "-w", str(raw), "-s", "150", SPEECH_TEXT], check=True, capture_output=True
            )
        except (OSError, subprocess.CalledProcessError):
            print("espeak-ng unavailable: no speech clip")
            return None
        data, rate = sf.read(raw, dtype="int16")
        sf.write(target, data, rate, subtype="PCM_16")
        raw.unlink()
    out = folder / "speech.flac"
    out.write_bytes(target.read_bytes())
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("av_benchmark", type=Path)
    parser.add_argument("passt_hear21", type=Path)
    parser.add_argument("--media", type=Path, help="a real clip (video or audio)")
    parser.add_argument("--skip-full", action="store_true", help="only the fast goldens")
    args = parser.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    sys.path[:0] = [str(args.av_benchmark.resolve()), str(args.passt_hear21.resolve())]
    stub_modules()
    import torchaudio
    import torchaudio.functional as taf
    from av_bench.data.audio_dataset import AudioDataset
    from av_bench.panns import Cnn14 as OfficialCnn14
    from av_bench.vggish.vggish import VGGish as OfficialVGGish
    from hear21passt.models.passt import PaSST as OfficialPaSST
    from hear21passt.models.passt import get_model
    from hear21passt.models.preprocess import AugmentMelSTFT
    from hear21passt.wrapper import PasstBasicWrapper

    DATA.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="avb-goldens-"))
    home, torch_home = work / "home", work / "torch"
    os.environ["HOME"], os.environ["TORCH_HOME"] = str(home), str(torch_home)

    ckpt = home / ".cache" / "audioldm_eval" / "ckpt"
    ckpt.mkdir(parents=True)
    (ckpt / "Cnn14_mAP=0.431.pth").write_bytes(b"")  # only its existence is checked at 16 kHz

    # 1. manifests of the official modules
    panns_args = dict(
        features_list=["2048", "logits"],
        sample_rate=16000,
        window_size=512,
        hop_size=160,
        mel_bins=64,
        fmin=50,
        fmax=8000,
        classes_num=527,
    )
    with NoLoad():
        cnn = OfficialCnn14(**panns_args)
        vgg = OfficialVGGish(postprocess=False, device="cpu")
    passt_net = get_model(arch="passt_s_swa_p16_128_ap476", pretrained=False)
    manifests = {
        "panns": parameter_manifest(cnn.state_dict()),
        "vggish": parameter_manifest(vgg.state_dict()),
        "passt": parameter_manifest(passt_net.state_dict()),
    }
    for name, manifest in manifests.items():
        _save_json(DATA / f"{name}_manifest.json", manifest)
    front = {k: v for k, v in cnn.state_dict().items() if k.startswith(("spectrogram_", "logmel_"))}
    torch.save(
        {
            "melW": front["logmel_extractor.melW"].clone(),
            "conv_real_rows": front["spectrogram_extractor.stft.conv_real.weight"][::32].clone(),
            "conv_imag_rows": front["spectrogram_extractor.stft.conv_imag.weight"][::32].clone(),
        },
        DATA / "panns_frontend.pt",
    )
    del cnn, vgg, passt_net

    # 2. seeded weights, saved where the official loaders look
    torch.save({"model": seeded_state(manifests["panns"], SEED, front)}, ckpt / "Cnn14_16k_mAP=0.438.pth")
    vgg_file = work / "vggish-10086976.pth"
    torch.save(seeded_state(manifests["vggish"], SEED), vgg_file)
    hub_dir = torch_home / "hub" / "checkpoints"
    hub_dir.mkdir(parents=True)
    torch.save(seeded_state(manifests["passt"], SEED), hub_dir / "passt-s-f128-p16-s10-ap.476-swa.pt")

    class _HubVGGish(torch.nn.Module):
        def state_dict(self, *a, **k):
            return torch.load(vgg_file, weights_only=True)

    torch.hub.load = lambda *a, **k: _HubVGGish()

    # 3. clips and the official extraction
    clips_dir = work / "clips"
    clips = synthetic_clips(clips_dir)
    speech = _speech(clips_dir)
    if speech:
        clips.append(speech)
    if args.media and args.media.exists():
        audio = read_audio(args.media)
        real = clips_dir / f"{args.media.stem}.wav"
        sf.write(real, audio.waveform.T, audio.sample_rate, subtype="FLOAT")
        clips.append(real)
    prepared = {}
    for rate in (16000, 32000):
        ds = AudioDataset(sorted(clips), audio_length=10.0, sr=rate)
        for i in range(len(ds)):
            wave, stem = ds[i]
            prepared[f"{stem}@{rate}"] = {
                "length": wave.shape[-1],
                "head": wave[0, :1000].clone(),
                "sum": wave.double().sum().item(),
            }
    torch.save(prepared, DATA / "prepared.pt")
    if not args.skip_full:
        import av_bench.extraction_models as extraction_models
        from av_bench.extract import extract

        empty = work / "synchformer_state_dict.pth"
        torch.save({}, empty)  # the video-side model is a stand-in; it never runs here
        extraction_models._syncformer_ckpt_path = empty
        cache = DATA / "official_cache"
        extract(
            clips_dir,
            cache,
            audio_length=10.0,
            batch_size=1,
            num_workers=0,
            device="cpu",
            skip_video_related=True,
            skip_clap=True,
        )

    # 4a. resamplers, both kernel precisions
    gen = torch.Generator().manual_seed(SEED)
    resample = {}
    for orig, new in (
        (44100, 16000),
        (48000, 16000),
        (22050, 16000),
        (44100, 32000),
        (48000, 32000),
        (16000, 32000),
        (8000, 16000),
    ):
        x = torch.randn(2, orig // 25 + 7, generator=gen)
        resample[f"{orig}->{new}"] = {
            "input": x,
            "transform": torchaudio.transforms.Resample(orig, new)(x),
            "functional": taf.resample(x, orig, new),
        }
    torch.save(resample, DATA / "resample.pt")

    # 4b. a reduced PaSST (official classes), run as extract() runs PaSST
    tiny = OfficialPaSST(
        img_size=(128, 998),
        stride=(10, 10),
        in_chans=1,
        num_classes=527,
        embed_dim=64,
        depth=2,
        num_heads=4,
        distilled=True,
    )
    tiny_manifest = parameter_manifest(tiny.state_dict())
    _save_json(DATA / "passt_tiny_manifest.json", tiny_manifest)
    tiny.load_state_dict(seeded_state(tiny_manifest, SEED))
    mel = AugmentMelSTFT(
        n_mels=128,
        sr=32000,
        win_length=800,
        hopsize=320,
        n_fft=1024,
        freqm=48,
        timem=192,
        htk=False,
        fmin=0.0,
        fmax=None,
        norm=1,
        fmin_aug_range=10,
        fmax_aug_range=2000,
    )
    wrapper = PasstBasicWrapper(mel=mel, net=tiny, mode="all").eval()
    out = {}
    with torch.inference_mode():
        ds = AudioDataset(sorted(clips), audio_length=10.0, sr=32000)
        for i in range(len(ds)):
            wave, stem = ds[i]
            wav = wave.float()
            wav = (
                wav[..., :320000]
                if wav.size(-1) >= 320000
                else torch.nn.functional.pad(wav, (0, 320000 - wav.size(-1)))
            )
            feats = wrapper(wav)
            out[stem] = {"logits": feats[0, :527].clone(), "features_embed": feats[0, 527:].clone()}
    torch.save(out, DATA / "passt_tiny.pt")
    print("goldens written to", DATA, "from clips", [c.name for c in clips])


if __name__ == "__main__":
    main()
