"""Build the voice-over gate's labelled development set from real recordings Debian ships.

Why real recordings: a speech detector tuned on synthetic speech learns the
synthesiser. Every clip here is cut from a recording a person made:

* speech, telephone band: the Asterisk prompts (``asterisk-core-sounds-{en,es,fr,it,ru}-wav``,
  ``asterisk-prompt-it-menardi-wav``), five voice talents in five languages,
  8 kHz telephone recordings;
* speech, full band (``band: "full"`` in the manifest): words read aloud for
  Tux Paint's stamps (``tuxpaint-stamps-default``, eight languages) and
  KTuberling (``ktuberling-data``, eleven languages), and Hedgewars' acted voice
  packs (``hedgewars-data``), recorded at 22–48 kHz; ``vad_devset_catalog.py``
  says which files and why. These are single words or short lines, so one
  full-band utterance joins one to four recordings of the same voice with
  0.1–0.3 s pauses until it lasts 1.2 s (a short spoken phrase);
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
English and Spanish and Menardi tune; June, Carlo and the Russian voice test;
full-band voices by language, and all Hedgewars packs test, since the package
does not say who voiced which) and backgrounds (a seeded shuffle per kind; the
VGGSound soundtrack is the test half's). Reproducible: the same seed gives the
same clips, byte for byte.

Two parts. The telephone part is drawn first, from the first set's sources and
random stream only, so that its clips stay byte for byte those of the first
set and old figures stay comparable (``added: 1``); the full-band voices, the
further negatives and their beds come after, from their own stream
(``added: 2``). Both parts use the same SNR grid and sizes per half, and the
further negatives keep at least as many clips without words as with them.
A missing package is named in one line and left out; the set is built from
what is installed.

    python tools/build_vad_devset.py [--out DIR] [--seed 0] [--scale 1.0]

writes ``DIR/{tune,test}/*.wav`` (16 kHz mono, the detectors' own rate) and
``DIR/manifest.jsonl``; each clip's ``band``, ``language`` and
``source_package`` (the voice's package for a positive, the sound's for a
negative) let a benchmark report per speech band.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import os
import struct
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/ is not a package
from vad_devset_catalog import VoicePack, matches, sound_sets, voice_packs  # noqa: E402

RATE = 16000
CLIP_S = 6.0
SNRS_DB = (-10, -5, 0, 5, 10, 20)
ASTERISK = Path("/usr/share/asterisk/sounds")
OPENSFX = Path("/usr/share/games/openttd/baseset/opensfx/opensfx.cat")
LINCITY = Path("/usr/share/games/lincity-ng/sounds")
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
FOLDER_PACKAGE = {
    "en_US_f_Allison": "asterisk-core-sounds-en-wav",
    "es_MX_f_Allison": "asterisk-core-sounds-es-wav",
    "it_IT_f_Menardi": "asterisk-prompt-it-menardi-wav",
    "fr_CA_f_June": "asterisk-core-sounds-fr-wav",
    "it_IT_m_Carlo": "asterisk-core-sounds-it-wav",
    "ru_RU_f_IvrvoiceRU": "asterisk-core-sounds-ru-wav",
}

# OpenSFX entries by index (the descriptions are in the .cat file itself)
OPENSFX_KINDS = {
    "music": (0, 1),
    "engine": (4, 5, 8, 9, 10, 11, 13, 24, 25, 27, 28, 33, 40, 56, 59, 61, 65, 69, 70, 71),
    "horn_beep": (3, 6, 7, 14, 21, 22, 26, 35),
    "animal": (36, 37, 38, 66, 67, 68, 72),
    "crowd": (29,),
    "nonverbal_vocal": (30,),
    "foley": (2, 12, 15, 16, 17, 18, 19, 20, 23, 31, 32, 39, 41, 42, 43, 44, 45, 46, 47, 48, 49, 51, 53, 54,
              55, 58, 60, 62, 63, 64),
    "ambience": (52, 57),
}  # fmt: skip
LINCITY_KINDS = {
    "engine": ("TraficHigh", "TraficLow", "RailTrain", "IndustryHigh", "IndustryLight", "CoalMine", "OreMine",
               "Mill", "WindMill", "PowerCoal"),
    "crowd": ("SportsCroud",),
    "ambience": ("Water", "Green", "ParklandLake", "Harbor", "Farm"),
    "foley": ("Blacksmith", "Build", "Raze", "Fire"),
}  # fmt: skip
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
# where each of FILES' folders comes from, to name a missing package
PACKAGE_OF = {
    "/usr/share/asterisk/moh": "asterisk-moh-opsound-wav",
    "/usr/share/games/colobot": "colobot-common-sounds",
    "/usr/share/games/lincity-ng": "lincity-ng-data",
    "/usr/share/games/frozen-bubble": "frozen-bubble-data",
    "/usr/share/games/heroes": "heroes-sound-effects",
    "/usr/share/tuxpaint/sounds": "tuxpaint-data",
    "/usr/share/games/pingus": "pingus-data",
    "{media}": "shared/media",
}
# negatives per half and kind (the soundtrack is the test half's only: one real VGGSound clip)
NEGATIVES = {"soundtrack": 24, "music": 40, "engine": 40, "horn_beep": 20, "animal": 25, "crowd": 24,
             "nonverbal_vocal": 12, "foley": 40, "ambience": 20}  # fmt: skip
# the full-band part's further negatives per half and kind (then topped up to the positives' count)
MORE_NEGATIVES = {"music": 40, "engine": 25, "horn_beep": 10, "animal": 50, "crowd": 10,
                  "nonverbal_vocal": 30, "foley": 55, "ambience": 20}  # fmt: skip
# Asterisk files that are not words: silences, beeps, tones, the monkeys' screech
NOT_SPEECH = {"tt-monkeys", "beep", "beeperr", "ascending-2tone", "descending-2tone"}
BED_KINDS = ("soundtrack", "music", "engine", "crowd", "ambience", "animal")
MIXES_PER_SPEAKER_SNR = {"tune": 16, "test": 12}
# full band: mixtures per SNR and half, over all voices (as many as the telephone part's)
FULL_MIXES_PER_SNR = {"tune": 32, "test": 36}
FULL_CLEAN = {"tune": 16, "test": 24}
PHRASE_S = 1.2  # a full-band utterance joins recordings of one voice until it is this long
PHRASE_PARTS = 4
# A voice-over also lands on quiet scenes: a share of the mixtures put the voice over a sparse sound
# (an effect, a call, a horn with silence around it) and a few clips hold the voice alone, so that
# "a sound surrounded by silence" cannot pass for "no speech".
SPARSE_KINDS = ("foley", "horn_beep", "animal", "nonverbal_vocal")
SPARSE_SHARE = 0.25
CLEAN_PER_SPEAKER = 8
# digital silence of this long or more is cut out of a recording longer than a clip, down to a pause
GAP_S = 2.0
GAP_KEEP_S = 0.3


@dataclass
class Source:
    name: str  # unique id of the recording
    kind: str
    half: str
    audio: np.ndarray  # mono float32 at RATE
    package: str = ""
    added: int = 1


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
    # added with the full-band voices
    band: str | None = None  # positives: "telephone" (Asterisk, 8 kHz) or "full"
    language: str | None = None  # positives: the voice's language
    source_package: str | None = None  # the Debian package of the voice (positives) or the sound
    speech_s: float | None = None  # positives: seconds of voice
    added: int = 1  # 1: the first set's clips, unchanged; 2: the full-band part


class Packages:
    """Which packages a build may use (``only``: a subset, e.g. what CI installs) and which were missing."""

    def __init__(self, only: Iterable[str] | None = None) -> None:
        self.only = None if only is None else set(only)
        self.missing: list[str] = []

    def wanted(self, package: str) -> bool:
        return self.only is None or package in self.only

    def present(self, package: str, found: bool, what: str) -> bool:
        """True when ``package``'s files are there; otherwise say so once, in one line."""
        if found or not self.wanted(package):
            return found and self.wanted(package)
        if package not in self.missing:
            self.missing.append(package)
            where = "beside the checkout" if package == "shared/media" else f"apt-get install {package}"
            print(f"left out: {what} ({package} not found; {where})", file=sys.stderr)
        return False


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


def _package_of(pattern: str) -> str:
    return next((pkg for prefix, pkg in PACKAGE_OF.items() if pattern.startswith(prefix)), "?")


def _usable(audio: np.ndarray) -> bool:
    return audio.size >= RATE // 10 and np.abs(audio).max() >= 1e-4  # not an empty placeholder


def without_silences(audio: np.ndarray, longest_s: float = GAP_S, floor: float = 1e-4) -> np.ndarray:
    """A recording longer than a clip without its stretches of digital silence of ``longest_s`` or more.

    Why: two of Colobot's tracks are 20 s of music followed by a minute of
    zeros, and many tracks end on seconds of them; a 6 s window drawn there was
    a "music" negative (or a bed) that held nothing. Each such stretch is cut
    down to ``GAP_KEEP_S`` (a pause, as the music has). Shorter sounds keep
    their silences: an effect is meant to sit in them (the sparse beds).
    """
    frame = RATE // 10
    if audio.size <= CLIP_S * RATE:
        return audio
    silent = np.abs(audio[: audio.size // frame * frame]).reshape(-1, frame).max(axis=1) < floor
    keep = np.ones(audio.size, bool)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], silent.astype(np.int8), [0]])))
    for first, last in zip(edges[::2], edges[1::2], strict=True):
        if (last - first) * frame >= longest_s * RATE:
            keep[first * frame + int(GAP_KEEP_S * RATE) : last * frame] = False
    return audio if keep.all() else np.ascontiguousarray(audio[keep])


def load_backgrounds(
    rng: np.random.Generator, media: Path = MEDIA, packages: Packages | None = None
) -> list[Source]:
    """The first set's beds and negatives (its halves drawn from ``rng`` exactly as they always were)."""
    packages = packages or Packages()
    by_kind: dict[str, list[tuple[str, object, str]]] = {}
    if packages.present("openttd-opensfx", OPENSFX.exists(), "OpenTTD's field recordings"):
        for kind, indices in OPENSFX_KINDS.items():
            by_kind.setdefault(kind, []).extend((f"opensfx_{i:02d}", i, "openttd-opensfx") for i in indices)
    if packages.present("lincity-ng-data", LINCITY.is_dir(), "LinCity-NG's city loops"):
        for kind, stems in LINCITY_KINDS.items():
            for stem in stems:
                for path in sorted(LINCITY.glob(f"{stem}*.wav")):
                    # the numbered takes of one LinCity loop are one recording: they share a name
                    by_kind.setdefault(kind, []).append(
                        (f"lincity_{stem}:{path.stem}", path, "lincity-ng-data")
                    )
    for kind, patterns in FILES.items():
        for pattern in patterns:
            package = _package_of(pattern)
            found = sorted(glob.glob(pattern.format(media=media))) if packages.wanted(package) else []
            if packages.present(package, bool(found), f"{kind} sounds"):
                by_kind.setdefault(kind, []).extend((Path(p).stem, Path(p), package) for p in found)
    sources = []
    for kind, items in by_kind.items():
        groups = sorted({name.split(":")[0] for name, _, _ in items})
        half_of = {g: "test" for g in groups} if kind == "soundtrack" else _halves(groups, rng)
        for name, where, package in items:
            audio = without_silences(_opensfx(where) if isinstance(where, int) else _read(where))
            if _usable(audio):
                sources.append(Source(name, kind, half_of[name.split(":")[0]], audio, package))
    return sources


def load_more_sounds(rng: np.random.Generator, packages: Packages) -> list[Source]:
    """The full-band part's further sounds: per kind, a seeded split between halves unless fixed."""
    by_kind: dict[str, list[tuple[str, Path, str, str | None]]] = {}
    for sounds in sound_sets():
        found = (
            matches(sounds.root, sounds.patterns, sounds.exclude) if packages.wanted(sounds.package) else []
        )
        if packages.present(sounds.package, bool(found), f"{sounds.kind} sounds"):
            for path in found:
                name = f"{sounds.package.split('-')[0]}_{path.relative_to(sounds.root).with_suffix('')}"
                by_kind.setdefault(sounds.kind, []).append((name, path, sounds.package, sounds.half))
    sources = []
    for kind in sorted(by_kind):
        items = by_kind[kind]
        half_of = _halves([name for name, _, _, half in items if half is None], rng)
        for name, path, package, half in items:
            audio = without_silences(_read(path))
            if _usable(audio):
                sources.append(Source(name, kind, half or half_of[name], audio, package, added=2))
    return sources


def load_speech(
    min_s: float = 1.2, packages: Packages | None = None
) -> dict[str, list[tuple[str, np.ndarray]]]:
    """The Asterisk voices' utterances of at least ``min_s`` seconds, per speaker present."""
    packages = packages or Packages()
    speech = {}
    for speaker, (folders, _, _) in SPEAKERS.items():
        items = []
        for folder in folders:
            root = ASTERISK / folder
            if not packages.present(FOLDER_PACKAGE[folder], root.is_dir(), f"the voice {folder}"):
                continue
            for path in sorted(root.rglob("*.wav")):
                if path.parent.name == "silence" or path.stem in NOT_SPEECH:
                    continue
                if sf.info(path).duration >= min_s:
                    items.append((f"{folder}/{path.relative_to(root).with_suffix('')}", _read(path)))
        if items:
            speech[speaker] = items
    return speech


def load_voices(packages: Packages) -> dict[VoicePack, list[Path]]:
    """The full-band voices present: each pack's recordings (read when drawn: there are thousands)."""
    voices = {}
    for pack in voice_packs():
        found = matches(pack.root, pack.patterns, pack.exclude) if packages.wanted(pack.package) else []
        if packages.present(pack.package, bool(found), f"the voice {pack.name}"):
            voices[pack] = found
    return voices


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


def snr_gain(utt: np.ndarray, bg: np.ndarray, start: int, snr_db: float, sparse: bool) -> np.float64:
    """The voice's gain for ``snr_db``: its power over its span against the bed's there (or a sparse bed's level)."""
    ref = max(_power(bg[start : start + utt.size]), _active_power(bg) if sparse else 0.0)
    # a NumPy float64, as the first set had it: the product with the voice is then taken in float64
    return np.sqrt(ref / _power(utt) * 10 ** (snr_db / 10))


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


def _count(n: int, scale: float) -> int:
    return max(1, round(n * scale))


def _language(folder: str) -> str:
    return folder.split("_")[0]


def _trimmed(audio: np.ndarray, frame: int = 160, margin: int = 5) -> np.ndarray:
    """A word without the silence its file holds around it (10 ms frames within 40 dB of the loudest)."""
    frames = audio[: audio.size // frame * frame].reshape(-1, frame)
    power = np.mean(np.square(frames, dtype=np.float64), axis=1)
    loud = np.flatnonzero(power >= power.max() * 1e-4) if power.size else np.array([], int)
    if not loud.size:
        return audio
    first, last = max(loud[0] - margin, 0), min(loud[-1] + 1 + margin, power.size)
    return audio[first * frame : last * frame]


def _phrase(
    pack: VoicePack, paths: list[Path], rng: np.random.Generator, cache: dict[Path, np.ndarray]
) -> tuple[str, np.ndarray]:
    """One to ``PHRASE_PARTS`` recordings of one voice, 0.1–0.3 s apart, until ``PHRASE_S`` seconds."""
    parts: list[np.ndarray] = []
    names = []
    while sum(p.size for p in parts) < PHRASE_S * RATE and len(names) < PHRASE_PARTS:
        path = paths[int(rng.integers(len(paths)))]
        if path not in cache:
            cache[path] = _trimmed(_read(path))
        if parts:
            parts.append(np.zeros(int(rng.uniform(0.1, 0.3) * RATE), np.float32))
        parts.append(cache[path])
        names.append(f"{pack.name}:{path.relative_to(pack.root).with_suffix('')}")
    return "+".join(names), np.concatenate(parts)


def _draw_bed(
    beds: list[Source], sparse_beds: list[Source], n: int, rng: np.random.Generator
) -> tuple[Source, np.ndarray, bool]:
    """A bed for one mixture: continuous, or (a quarter of the time) a sparse sound in silence."""
    sparse = rng.random() < SPARSE_SHARE
    if not (sparse_beds if sparse else beds):  # only where a package is missing
        sparse = not sparse
    choice = sparse_beds if sparse else beds
    bed = choice[int(rng.integers(len(choice)))]
    return bed, (_crop(bed.audio, n, rng) if sparse else _bed(bed.audio, n, rng)), sparse


def _mixture(
    utt: np.ndarray,
    snr: float | None,
    beds: list[Source],
    sparse_beds: list[Source],
    rng: np.random.Generator,
) -> tuple[np.ndarray, Source | None, int]:
    """The voice at a random offset in a 6 s bed at ``snr`` dB (None: the voice alone)."""
    n = int(CLIP_S * RATE)
    utt = utt[: n - RATE // 2]
    start = int(rng.integers(0, n - utt.size + 1))
    if snr is None:
        bed, bg, gain = None, np.zeros(n, np.float32), 1.0
    else:
        bed, bg, sparse = _draw_bed(beds, sparse_beds, n, rng)
        gain = snr_gain(utt, bg, start, snr, sparse)
    mix = bg.copy()
    mix[start : start + utt.size] += gain * utt
    return _level(mix, rng), bed, start


def _beds(pool: list[Source]) -> tuple[list[Source], list[Source]]:
    beds = [s for s in pool if s.kind in BED_KINDS and s.audio.size >= 3 * RATE]
    return beds, [s for s in pool if s.kind in SPARSE_KINDS]


def _positive(out: Path, cid: str, half: str, mix: np.ndarray, **fields) -> Clip:
    path = out / half / f"{cid}.wav"
    _write(path, mix)
    return Clip(id=cid, half=half, label=1, kind="speech", path=str(path.relative_to(out)), **fields)


def _negative(out: Path, cid: str, half: str, src: Source, rng: np.random.Generator, added: int) -> Clip:
    path = out / half / f"{cid}.wav"
    _write(path, _level(_crop(src.audio, int(CLIP_S * RATE), rng), rng))
    return Clip(cid, half, 0, src.kind, None, None, None, src.name, src.kind, None, str(path.relative_to(out)),
                source_package=src.package, added=added)  # fmt: skip


def _telephone_part(
    out: Path, half: str, pool: list[Source], speech: dict, rng: np.random.Generator, scale: float
) -> list[Clip]:
    """The first set's clips of one half, drawn exactly as they always were (so their bytes do not change)."""
    clips = []
    beds, sparse_beds = _beds(pool)
    for speaker, (_, speaker_half, _) in SPEAKERS.items():
        if speaker_half != half or speaker not in speech or not (beds or sparse_beds):
            continue
        for snr in (*SNRS_DB, None):
            for k in range(
                _count(MIXES_PER_SPEAKER_SNR[half] if snr is not None else CLEAN_PER_SPEAKER, scale)
            ):
                utt_name, utt = speech[speaker][int(rng.integers(len(speech[speaker])))]
                mix, bed, start = _mixture(utt, snr, beds, sparse_beds, rng)
                folder = utt_name.split("/")[0]
                tag = "clean" if snr is None else f"{snr:+d}dB"
                clips.append(_positive(out, f"{half}_pos_{speaker}_{tag}_{k:02d}", half, mix,
                    snr_db=None if snr is None else float(snr), speaker=speaker, utterance=utt_name,
                    background=bed and bed.name, background_kind=bed and bed.kind, offset_s=round(start / RATE, 3),
                    band="telephone", language=_language(folder), source_package=FOLDER_PACKAGE[folder],
                    speech_s=round(min(utt.size, int(CLIP_S * RATE) - RATE // 2) / RATE, 3)))  # fmt: skip
    for kind, count in NEGATIVES.items():
        members = [s for s in pool if s.kind == kind]
        for k in range(_count(count, scale) if members else 0):
            src = members[k % len(members)] if k < len(members) else members[int(rng.integers(len(members)))]
            clips.append(_negative(out, f"{half}_neg_{kind}_{k:02d}", half, src, rng, added=1))
    return clips


def _full_band_part(
    out: Path, half: str, pool: list[Source], voices: dict[VoicePack, list[Path]], negatives_so_far: int,
    positives_so_far: int, rng: np.random.Generator, scale: float,
) -> list[Clip]:  # fmt: skip
    """Full-band voices over this half's beds (old and new), then further negatives to keep the balance."""
    clips = []
    beds, sparse_beds = _beds(pool)
    groups: dict[str, list[VoicePack]] = {}
    for pack in sorted((p for p in voices if p.half == half), key=lambda p: p.name):
        groups.setdefault(pack.group, []).append(pack)
    order = sorted(groups)
    cache: dict[Path, np.ndarray] = {}
    for snr in (*SNRS_DB, None) if order and (beds or sparse_beds) else ():
        for k in range(_count(FULL_MIXES_PER_SNR[half] if snr is not None else FULL_CLEAN[half], scale)):
            members = groups[order[k % len(order)]]
            pack = members[int(rng.integers(len(members)))]
            utt_name, utt = _phrase(pack, voices[pack], rng, cache)
            mix, bed, start = _mixture(utt, snr, beds, sparse_beds, rng)
            tag = "clean" if snr is None else f"{snr:+d}dB"
            clips.append(_positive(out, f"{half}_pos_{pack.name}_{tag}_{k:02d}", half, mix,
                snr_db=None if snr is None else float(snr), speaker=pack.name, utterance=utt_name,
                background=bed and bed.name, background_kind=bed and bed.kind, offset_s=round(start / RATE, 3),
                band="full", language=pack.language, source_package=pack.package,
                speech_s=round(min(utt.size, int(CLIP_S * RATE) - RATE // 2) / RATE, 3), added=2))  # fmt: skip
    kinds = [k for k in MORE_NEGATIVES if any(s.kind == k for s in pool)]
    plan = {kind: _count(MORE_NEGATIVES[kind], scale) for kind in kinds}
    for i in range(max(0, positives_so_far + len(clips) - negatives_so_far - sum(plan.values()))):
        plan[kinds[i % len(kinds)]] += 1  # at least as many clips without words as with them
    for kind, count in plan.items():
        members = [s for s in pool if s.kind == kind]
        fresh = sorted((s for s in members if s.added == 2), key=lambda s: s.name)
        first = _count(NEGATIVES.get(kind, 0), scale)  # the first set's clips hold the lower numbers
        for k in range(count):
            src = fresh[k] if k < len(fresh) else members[int(rng.integers(len(members)))]
            clips.append(_negative(out, f"{half}_neg_{kind}_{first + k:02d}", half, src, rng, added=2))
    return clips


def build(
    out: Path, seed: int = 0, media: Path = MEDIA, only: Iterable[str] | None = None, scale: float = 1.0
) -> list[Clip]:
    """Write the set under ``out``; ``only`` limits it to some packages, ``scale`` its size (tests)."""
    packages = Packages(only)
    rng = np.random.default_rng(seed)
    backgrounds = load_backgrounds(rng, media, packages)
    speech = load_speech(packages=packages)
    # the full-band part has its own stream, so that the first part stays as it was
    more_rng = np.random.default_rng([seed, 2])
    more = load_more_sounds(more_rng, packages)
    voices = load_voices(packages)
    if not (speech or voices) or not backgrounds + more:
        raise SystemExit("no voice or no background sound found: apt-get install the packages named above")
    clips: list[Clip] = []
    for half in ("tune", "test"):
        clips += _telephone_part(out, half, [s for s in backgrounds if s.half == half], speech, rng, scale)
    for half in ("tune", "test"):
        part = [c for c in clips if c.half == half]
        pool = [s for s in backgrounds + more if s.half == half]
        positives = sum(c.label for c in part)
        clips += _full_band_part(out, half, pool, voices, len(part) - positives, positives, more_rng, scale)
    manifest = out / "manifest.jsonl"
    with tempfile.NamedTemporaryFile("w", dir=out, suffix=".jsonl", delete=False, encoding="utf-8") as tmp:
        for clip in clips:
            tmp.write(json.dumps(asdict(clip)) + "\n")
    _publish(tmp.name, manifest)
    if packages.missing:
        print(f"built without: {', '.join(packages.missing)}", file=sys.stderr)
    return clips


def summary(clips: list[Clip]) -> str:
    lines = []
    for half in ("tune", "test"):
        part = [c for c in clips if c.half == half]
        pos = [c for c in part if c.label]
        bands = ", ".join(f"{sum(c.band == b for c in pos)} {b}" for b in ("telephone", "full"))
        speakers = sorted({c.speaker for c in pos})
        lines.append(f"{half}: {len(pos)} positives ({bands}), {len(part) - len(pos)} negatives; "
                     f"{len(speakers)} voices: {', '.join(speakers)}")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--media", type=Path, default=MEDIA, help="the shared/media folder beside the checkout"
    )
    parser.add_argument("--scale", type=float, default=1.0, help="a smaller set for a quick look")
    parser.add_argument("--only", default=None, help="comma-separated Debian packages to use (default: all)")
    args = parser.parse_args()
    clips = build(args.out, args.seed, args.media, args.only and args.only.split(","), args.scale)
    print(summary(clips))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
