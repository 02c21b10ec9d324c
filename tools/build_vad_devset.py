"""Build the voice-over gate's labelled development set from real recordings Debian ships.

Why real recordings: a speech detector tuned on synthetic speech learns the
synthesiser. Every clip here is cut from a recording a person made:

* speech: the Asterisk prompts (``asterisk-core-sounds-{en,es,fr,it,ru}-wav``,
  ``asterisk-prompt-it-menardi-wav``), five voice talents in five languages,
  8 kHz telephone recordings;
* backgrounds and negatives: OpenTTD's OpenSFX (field recordings of engines,
  ship and ferry horns, a horse, a cow, sheep, monkeys, birds, an audience,
  wind, bubbles, morse), LinCity-NG's city loops, Colobot's music and sounds,
  Asterisk's music on hold, Frozen-Bubble, Heroes, Pingus and Tux Paint effects,
  and the VGGSound soundtrack in ``shared/media`` (the clip without voice).

Labels. A positive is an utterance mixed into a 6 s bed at −10, −5, 0, +5, +10
or +20 dB (speech power over its own span against the bed's power over the
same span), at a random offset; a quarter of the beds are sparse (an effect
or a call with silence around it: the SNR is then taken against the sound's
own level), and a few positives are the voice alone. Negatives are 6 s of a source without words:
clean soundtracks, music, engines, horns and beeps, animals, crowds, ambiences,
Foley, and non-verbal vocal sounds (laughter, a snore, an audience's "oooh").
Those last ones are labelled **negative**: the method removes voice-overs,
i.e. words laid over the pictures; a laugh, a crowd's reaction or a snore is
the scene's own sound, which step 3 would wrongly carve out of the soundtrack
(BS-RoFormer's vocal stem takes it too). Files whose content was not certain
from their name (LinCity's residential or school loops, cartoon voices saying
"oh no", "let's go") are left out rather than guessed.

Split. Every source recording belongs to one half only: speakers (Allison in
English and Spanish and Menardi tune; June, Carlo and the Russian voice test)
and backgrounds (a seeded shuffle per kind; the VGGSound soundtrack is the
test half's). Reproducible: the same seed gives the same clips, byte for byte.

    python tools/build_vad_devset.py [--out DIR] [--seed 0]

writes ``DIR/{tune,test}/*.wav`` (16 kHz mono, the detectors' own rate) and
``DIR/manifest.jsonl``; a missing package is named in one line.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import struct
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

RATE = 16000
CLIP_S = 6.0
SNRS_DB = (-10, -5, 0, 5, 10, 20)
ASTERISK = Path("/usr/share/asterisk/sounds")
OPENSFX = Path("/usr/share/games/openttd/baseset/opensfx/opensfx.cat")
MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
DEFAULT_OUT = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "deepsound" / "vad_devset"

# speaker -> (folders, half, Debian package)
SPEAKERS = {
    "allison": (("en_US_f_Allison", "es_MX_f_Allison"), "tune", "asterisk-core-sounds-en-wav/-es-wav"),
    "menardi": (("it_IT_f_Menardi",), "tune", "asterisk-prompt-it-menardi-wav"),
    "june": (("fr_CA_f_June",), "test", "asterisk-core-sounds-fr-wav"),
    "carlo": (("it_IT_m_Carlo",), "test", "asterisk-core-sounds-it-wav"),
    "ivr_ru": (("ru_RU_f_IvrvoiceRU",), "test", "asterisk-core-sounds-ru-wav"),
}

# OpenSFX entries by index (the descriptions are in the .cat file itself)
OPENSFX_KINDS = {
    "music": (0, 1),
    "engine": (4, 5, 8, 9, 10, 11, 13, 24, 25, 27, 28, 33, 40, 56, 59, 61, 65, 69, 70, 71),
    "horn_beep": (3, 6, 7, 14, 21, 22, 26, 35),
    "animal": (36, 37, 38, 66, 67, 68, 72),
    "crowd": (29,),
    "nonverbal_vocal": (30,),
    "foley": (
        2,
        12,
        15,
        16,
        17,
        18,
        19,
        20,
        23,
        31,
        32,
        39,
        41,
        42,
        43,
        44,
        45,
        46,
        47,
        48,
        49,
        51,
        53,
        54,
        55,
        58,
        60,
        62,
        63,
        64,
    ),  # fmt: skip
    "ambience": (52, 57),
}
LINCITY = Path("/usr/share/games/lincity-ng/sounds")
LINCITY_KINDS = {
    "engine": (
        "TraficHigh",
        "TraficLow",
        "RailTrain",
        "IndustryHigh",
        "IndustryLight",
        "CoalMine",
        "OreMine",
        "Mill",
        "WindMill",
        "PowerCoal",
    ),  # fmt: skip
    "crowd": ("SportsCroud",),
    "ambience": ("Water", "Green", "ParklandLake", "Harbor", "Farm"),
    "foley": ("Blacksmith", "Build", "Raze", "Fire"),
}
FILES = {
    "music": ["/usr/share/asterisk/moh/*.wav", "/usr/share/games/colobot/music/*.ogg",
              "/usr/share/games/lincity-ng/music/default/*.ogg", "/usr/share/games/frozen-bubble/snd/*zik*.ogg"],
    "crowd": ["/usr/share/games/heroes/sfx/foule*.wav", "/usr/share/games/frozen-bubble/snd/applause.ogg"],
    "nonverbal_vocal": ["/usr/share/tuxpaint/sounds/giggle.wav", "/usr/share/games/frozen-bubble/snd/snore.ogg"],
    "horn_beep": ["/usr/share/games/heroes/sfx/claxon.wav"],
    "foley": ["/usr/share/games/colobot/sounds/sound0[0-4]*.wav", "/usr/share/games/heroes/sfx/explo01.wav",
              "/usr/share/games/heroes/sfx/coins.wav", "/usr/share/games/heroes/sfx/clock0*.wav",
              "/usr/share/games/heroes/sfx/ecrase02.wav", "/usr/share/tuxpaint/sounds/[b-fhkls]*.wav",
              "/usr/share/games/frozen-bubble/snd/[dlmnrt][aey]*.ogg", "/usr/share/games/pingus/data/sounds/[cdpst]*.wav"],
    "soundtrack": ["{media}/1QBsc_IXg8U_000750.mp4"],  # the VGGSound clip without voice
}  # fmt: skip
# negatives per half and kind (the soundtrack is the test half's only: one real VGGSound clip)
NEGATIVES = {"soundtrack": 24, "music": 40, "engine": 40, "horn_beep": 20, "animal": 25, "crowd": 24,
             "nonverbal_vocal": 12, "foley": 40, "ambience": 20}  # fmt: skip
# Asterisk files that are not words: silences, beeps, tones, the monkeys' screech
NOT_SPEECH = {"tt-monkeys", "beep", "beeperr", "ascending-2tone", "descending-2tone"}
BED_KINDS = ("soundtrack", "music", "engine", "crowd", "ambience", "animal")
MIXES_PER_SPEAKER_SNR = {"tune": 16, "test": 12}
# A voice-over also lands on quiet scenes: a share of the mixtures put the voice over a sparse sound
# (an effect, a call, a horn with silence around it) and a few clips hold the voice alone, so that
# "a sound surrounded by silence" cannot pass for "no speech".
SPARSE_KINDS = ("foley", "horn_beep", "animal", "nonverbal_vocal")
SPARSE_SHARE = 0.25
CLEAN_PER_SPEAKER = 8


@dataclass
class Source:
    name: str  # unique id of the recording
    kind: str
    half: str
    audio: np.ndarray  # mono float32 at RATE


@dataclass
class Clip:
    id: str
    half: str
    label: int  # 1: speech (voice-over) present
    kind: str  # negatives: the kind of sound; positives: "speech"
    snr_db: float | None
    speaker: str | None
    utterance: str | None
    background: str | None
    background_kind: str | None
    offset_s: float | None
    path: str


def _to_rate(wav: np.ndarray, rate: int) -> np.ndarray:
    mono = wav.mean(axis=1) if wav.ndim == 2 else wav
    if rate != RATE:
        mono = soxr.resample(mono, rate, RATE, quality="VHQ")
    return np.ascontiguousarray(mono, dtype=np.float32)


def _read(path: Path) -> np.ndarray:
    if path.suffix == ".mp4":
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
        from deepsound.media import read_audio

        audio = read_audio(path)
        return _to_rate(audio.waveform.T, audio.sample_rate)
    wav, rate = sf.read(path, dtype="float32", always_2d=True)
    return _to_rate(wav, rate)


def _opensfx(index: int) -> np.ndarray:
    """One entry of OpenTTD's sound container: a table of (offset, size), each a named RIFF file."""
    data = OPENSFX.read_bytes()
    offset, size = struct.unpack_from("<II", data, index * 8)
    offset &= 0x7FFFFFFF
    name_len = data[offset]
    wav, rate = sf.read(
        io.BytesIO(data[offset + 1 + name_len : offset + size]), dtype="float32", always_2d=True
    )
    return _to_rate(wav, rate)


def _halves(names: list[str], rng: np.random.Generator) -> dict[str, str]:
    """Alternate a seeded shuffle of one kind's recordings between the halves (test first)."""
    order = sorted(names)
    rng.shuffle(order)
    return {name: ("test", "tune")[i % 2] for i, name in enumerate(order)}


def load_backgrounds(rng: np.random.Generator, media: Path = MEDIA) -> list[Source]:
    import glob

    by_kind: dict[str, list[tuple[str, object]]] = {}
    if not OPENSFX.exists():
        raise SystemExit(f"{OPENSFX} missing: apt-get install openttd-opensfx")
    for kind, indices in OPENSFX_KINDS.items():
        by_kind.setdefault(kind, []).extend((f"opensfx_{i:02d}", i) for i in indices)
    for kind, stems in LINCITY_KINDS.items():
        for stem in stems:
            for path in sorted(LINCITY.glob(f"{stem}*.wav")):
                # the numbered takes of one LinCity loop are one recording: they share a name
                by_kind.setdefault(kind, []).append((f"lincity_{stem}:{path.stem}", path))
    for kind, patterns in FILES.items():
        for pattern in patterns:
            found = sorted(glob.glob(pattern.format(media=media)))
            if not found:
                raise SystemExit(
                    f"no file matches {pattern}: install the package that ships it (see .ci/run)"
                )
            by_kind.setdefault(kind, []).extend((Path(p).stem, Path(p)) for p in found)
    sources = []
    for kind, items in by_kind.items():
        groups = sorted({name.split(":")[0] for name, _ in items})
        half_of = {g: "test" for g in groups} if kind == "soundtrack" else _halves(groups, rng)
        for name, where in items:
            audio = _opensfx(where) if isinstance(where, int) else _read(where)
            if audio.size < RATE // 10 or np.abs(audio).max() < 1e-4:
                continue  # empty placeholders
            sources.append(Source(name, kind, half_of[name.split(":")[0]], audio))
    return sources


def load_speech(min_s: float = 1.2) -> dict[str, list[tuple[str, np.ndarray]]]:
    speech = {}
    for speaker, (folders, _, package) in SPEAKERS.items():
        items = []
        for folder in folders:
            root = ASTERISK / folder
            if not root.is_dir():
                raise SystemExit(f"{root} missing: apt-get install {package}")
            for path in sorted(root.rglob("*.wav")):
                if path.parent.name == "silence" or path.stem in NOT_SPEECH:
                    continue
                if sf.info(path).duration >= min_s:
                    items.append((f"{folder}/{path.relative_to(root).with_suffix('')}", _read(path)))
        speech[speaker] = items
    return speech


def _crop(audio: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` samples of ``audio``: a random window, or the whole sound at a random place in silence."""
    if audio.size >= n:
        start = int(rng.integers(0, audio.size - n + 1))
        return audio[start : start + n].copy()
    out = np.zeros(n, np.float32)
    start = int(rng.integers(0, n - audio.size + 1))
    out[start : start + audio.size] = audio
    return out


def _bed(audio: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """A continuous bed of ``n`` samples (a short recording is looped)."""
    if audio.size < n:
        audio = np.tile(audio, int(np.ceil(n / audio.size)) + 1)
    return _crop(audio, n, rng)


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64))) + 1e-12


def _active_power(x: np.ndarray, frame: int = 512) -> float:
    """Power over the 32 ms frames that sound (within 40 dB of the loudest): a sparse bed's level."""
    frames = x[: x.size // frame * frame].reshape(-1, frame)
    power = np.mean(np.square(frames, dtype=np.float64), axis=1)
    active = power[power >= power.max() * 1e-4]
    return float(active.mean()) + 1e-12 if active.size else 1e-12


def _level(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random playback level (peak −20 … −1 dBFS), so that loudness alone tells nothing."""
    peak = float(np.abs(x).max()) or 1.0
    return (x * (10 ** (rng.uniform(-20, -1) / 20) / peak)).astype(np.float32)


def _publish(tmp: str, path: Path) -> None:
    """Move a finished temporary file into place with the user's umask (temporary files are 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    os.chmod(tmp, 0o666 & ~mask)
    os.replace(tmp, path)


def _write(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".wav", delete=False) as tmp:
        sf.write(tmp.name, audio, RATE, subtype="PCM_16")
    _publish(tmp.name, path)


def build(out: Path, seed: int = 0, media: Path = MEDIA) -> list[Clip]:
    rng = np.random.default_rng(seed)
    backgrounds = load_backgrounds(rng, media)
    speech = load_speech()
    n = int(CLIP_S * RATE)
    clips: list[Clip] = []
    for half in ("tune", "test"):
        pool = [s for s in backgrounds if s.half == half]
        beds = [s for s in pool if s.kind in BED_KINDS and s.audio.size >= 3 * RATE]
        sparse_beds = [s for s in pool if s.kind in SPARSE_KINDS]
        for speaker, (_, speaker_half, _) in SPEAKERS.items():
            if speaker_half != half:
                continue
            for snr in (*SNRS_DB, None):
                for k in range(MIXES_PER_SPEAKER_SNR[half] if snr is not None else CLEAN_PER_SPEAKER):
                    utt_name, utt = speech[speaker][int(rng.integers(len(speech[speaker])))]
                    utt = utt[: n - RATE // 2]
                    start = int(rng.integers(0, n - utt.size + 1))
                    if snr is None:  # the voice alone, silence around it
                        bed, bg, gain = None, np.zeros(n, np.float32), 1.0
                    else:
                        sparse = rng.random() < SPARSE_SHARE
                        bed = (sparse_beds if sparse else beds)[
                            int(rng.integers(len(sparse_beds if sparse else beds)))
                        ]
                        bg = _crop(bed.audio, n, rng) if sparse else _bed(bed.audio, n, rng)
                        ref = max(_power(bg[start : start + utt.size]), _active_power(bg) if sparse else 0.0)
                        gain = np.sqrt(ref / _power(utt) * 10 ** (snr / 10))
                    mix = bg.copy()
                    mix[start : start + utt.size] += gain * utt
                    tag = "clean" if snr is None else f"{snr:+d}dB"
                    cid = f"{half}_pos_{speaker}_{tag}_{k:02d}"
                    path = out / half / f"{cid}.wav"
                    _write(path, _level(mix, rng))
                    clips.append(Clip(cid, half, 1, "speech", None if snr is None else float(snr), speaker, utt_name,
                                      bed and bed.name, bed and bed.kind, round(start / RATE, 3),
                                      str(path.relative_to(out))))  # fmt: skip
        for kind, count in NEGATIVES.items():
            members = [s for s in pool if s.kind == kind]
            if not members:
                continue
            for k in range(count):
                src = (
                    members[k % len(members)]
                    if k < len(members)
                    else members[int(rng.integers(len(members)))]
                )
                cid = f"{half}_neg_{kind}_{k:02d}"
                path = out / half / f"{cid}.wav"
                _write(path, _level(_crop(src.audio, n, rng), rng))
                clips.append(Clip(cid, half, 0, kind, None, None, None, src.name, kind, None,
                                  str(path.relative_to(out))))  # fmt: skip
    manifest = out / "manifest.jsonl"
    with tempfile.NamedTemporaryFile("w", dir=out, suffix=".jsonl", delete=False, encoding="utf-8") as tmp:
        for clip in clips:
            tmp.write(json.dumps(asdict(clip)) + "\n")
    _publish(tmp.name, manifest)
    return clips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--media", type=Path, default=MEDIA, help="the shared/media folder beside the checkout"
    )
    args = parser.parse_args()
    clips = build(args.out, args.seed, args.media)
    for half in ("tune", "test"):
        part = [c for c in clips if c.half == half]
        pos = sum(c.label for c in part)
        print(f"{half}: {pos} positives, {len(part) - pos} negatives")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
