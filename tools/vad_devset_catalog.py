"""Full-band voices and further sounds for ``build_vad_devset.py``: which files of which Debian package.

Why a catalog of names: a file goes in only where its content is known from
the package itself (its folder, its name, the package's credits), never from a
guess about a name. Checked by reading the packages:

* Tux Paint's stamp descriptions (``tuxpaint-stamps-default``,
  ``*_desc_LANG.ogg``): the stamp's name read aloud, recorded at 44.1 kHz by
  one volunteer per language (the package's changelog credits them: Jacques
  Chion and PaulK in French, Edwin Veber in Russian, Tabbytha in Romanian,
  Krasimir Petkov in Bulgarian, Estefanía Ortiz in Spanish, Kseniya Buraya in
  Belarusian, Kiriaki Serafeim in Greek, Joe Dalton in Danish). Catalan is left
  out: its recordings hold nothing above 2 kHz, neither telephone nor full band.
* KTuberling's spoken names of the pieces (``ktuberling-data``,
  ``sounds/LANG/*.ogg``, 22–44 kHz, one recording per language); the
  character's exclamations (``say-*``, ``tux-huh``, ``-laugh``, ``-zzz`` …)
  are left out: a laugh or a "huh" is not a word, and which it is cannot be
  told from the name.
* Hedgewars' voice packs (``hedgewars-data``): short acted lines whose file
  names are the words ("Illgetyou", "Takecover"), in English accents, Spanish,
  Polish and Russian. The package does not say who voiced which pack, so all
  packs are one source and go to one half. ``Robot`` (a processed voice) and
  ``Singer`` (sung) are left out; the packs' laughs, "oof"s, "ow"s, coughs and
  moans are non-verbal negatives; "Hmm", "Oops", "Uh-oh", "Nooo", jumps and
  punches are left out either way.

Speakers of one language may be the same person in two packages, so a language
goes to one half in both; the Hedgewars packs share their half with the
languages they speak (English, Spanish, Russian, Polish).

Further negatives: Tux Paint's stamp sounds (animals, instruments, household
Foley, thunder, a fire engine's siren), Hedgewars' music and weapon Foley.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

TUXPAINT = Path("/usr/share/tuxpaint/stamps")
KTUBERLING = Path("/usr/share/ktuberling/sounds")
HEDGEWARS = Path("/usr/share/games/hedgewars/Data")


@dataclass(frozen=True)
class VoicePack:
    """One recorded voice (or, for Hedgewars, one voice pack) and where its words lie."""

    name: str  # the manifest's ``speaker``
    group: str  # mixtures rotate over groups, so a package of many packs weighs as one voice
    half: str
    package: str
    language: str
    root: Path
    patterns: tuple[str, ...]  # globs under root
    exclude: tuple[str, ...] = ()  # stems holding one of these are not words


# language -> half, for every full-band package (see the module docstring)
LANGUAGE_HALF = {
    "ro": "tune", "bg": "tune", "be": "tune", "da": "tune", "ca": "tune", "de": "tune",
    "gl": "tune", "lt": "tune", "sl": "tune", "wa": "tune",
    "fr": "test", "ru": "test", "es": "test", "el": "test", "en": "test", "uk": "test", "pl": "test",
    "und": "test",
}  # fmt: skip
TUXPAINT_LANGUAGES = ("ro", "bg", "be", "da", "fr", "ru", "es", "el")
KTUBERLING_LANGUAGES = ("ca", "da", "de", "gl", "lt", "sl", "wa", "el", "en", "ru", "uk")
KTUBERLING_NOT_WORDS = ("say-", "huh", "laugh", "zzz", "wow", "what", "stare", "sick", "angry", "love",
                        "idea", "theme")  # fmt: skip
# Hedgewars pack -> language
HEDGEWARS_PACKS = {
    "British": "en", "Classic": "en", "Default": "en", "Default_uk": "en", "HillBilly": "en",
    "Mobster": "en", "Pirate": "en", "Surfer": "en",
    "Russian": "und",  # the same English lines' names; whether spoken in English or Russian is not told
    "Default_es": "es", "Default_pl": "pl", "Russian_pl": "pl", "Default_ru": "ru",
}  # fmt: skip
HEDGEWARS_WORDS = (
    "Amazing", "Boring", "Brilliant", "Bugger", "Byebye", "Comeonthen", "Coward", "Cutitout", "Drat",
    "Enemydown", "Excellent", "Fire", "Firstblood", "Flawless", "Gonnagetyou", "Grenade", "Hello",
    "Hurry", "Illgetyou", "Incoming", "Justyouwait", "Kamikaze", "Leavemealone", "Melon", "Missed",
    "Nutter", "Ohdear", "Reinforcements", "Revenge", "Runaway", "Sameteam", "Solong", "Stupid",
    "Takecover", "Thisoneismine", "Traitor", "Victory", "Watchit", "Watchthis", "Whatthe", "Yessir",
    "Youllregretthat",
)  # fmt: skip
HEDGEWARS_NONVERBAL = ("Laugh", "Ooff1", "Ooff2", "Ooff3", "Ow1", "Ow2", "Ow3", "Ow4", "PoisonCough",
                       "PoisonMoan")  # fmt: skip
HEDGEWARS_HALF = "test"


def voice_packs() -> list[VoicePack]:
    packs = [
        VoicePack(f"tuxpaint_{lang}", f"tuxpaint_{lang}", LANGUAGE_HALF[lang], "tuxpaint-stamps-default",
                  lang, TUXPAINT, (f"**/*_desc_{lang}.ogg",))
        for lang in TUXPAINT_LANGUAGES
    ]  # fmt: skip
    packs += [
        VoicePack(f"ktuberling_{lang}", f"ktuberling_{lang}", LANGUAGE_HALF[lang], "ktuberling-data", lang,
                  KTUBERLING / lang, ("*.ogg",), KTUBERLING_NOT_WORDS)
        for lang in KTUBERLING_LANGUAGES
    ]  # fmt: skip
    packs += [
        VoicePack(f"hedgewars_{pack}", "hedgewars", HEDGEWARS_HALF, "hedgewars-data", lang,
                  HEDGEWARS / "Sounds" / "voices" / pack, tuple(f"{w}.ogg" for w in HEDGEWARS_WORDS))
        for pack, lang in HEDGEWARS_PACKS.items()
    ]  # fmt: skip
    assert all(p.half == LANGUAGE_HALF[p.language] for p in packs), "a language in both halves"
    return packs


@dataclass(frozen=True)
class SoundSet:
    """Negatives or beds of one kind from one package; ``half`` fixed, or None for a seeded split."""

    kind: str
    package: str
    root: Path
    patterns: tuple[str, ...]
    half: str | None = None
    exclude: tuple[str, ...] = ()


_TUX_FOLEY = ("household/**/*.ogg", "household/*.ogg", "hobbies/camera_35mm.ogg", "food/fruit/apple_red.ogg",
              "seasonal/christmas/gift.ogg", "seasonal/christmas/hard_candy.ogg", "seasonal/newyears/fireworks.ogg")  # fmt: skip
_HW_FOLEY = ("airmine_impact", "baseballbat", "blowtorch", "bump", "drillgun", "egg", "explosion",
             "firepunch_hit", "flamethrower", "frozen_hog_impact", "graveimpact", "grenadeimpact", "gun",
             "hammer", "knife_impact", "landgun", "melonimpact", "mineimpact", "minetick", "minigun",
             "molotov", "mortar", "parachute", "pickhammer", "ropeshot", "shotgunfire", "shotgunreload",
             "shutterclick", "sinegun", "sniperreload", "splash", "steam", "steps", "whipcrack")  # fmt: skip


def sound_sets() -> list[SoundSet]:
    voices = HEDGEWARS / "Sounds" / "voices"
    return [
        SoundSet("animal", "tuxpaint-stamps-default", TUXPAINT,
                 ("animals/**/*.ogg", "seasonal/halloween/blackcat.ogg"), exclude=("_desc",)),
        SoundSet("music", "tuxpaint-stamps-default", TUXPAINT, ("hobbies/music/**/*.ogg",), exclude=("_desc",)),
        SoundSet("foley", "tuxpaint-stamps-default", TUXPAINT, _TUX_FOLEY, exclude=("_desc",)),
        SoundSet("ambience", "tuxpaint-stamps-default", TUXPAINT, ("naturalforces/lightningbolt.ogg",)),
        SoundSet("horn_beep", "tuxpaint-stamps-default", TUXPAINT, ("vehicles/emergency/firetruck.ogg",)),
        SoundSet("music", "hedgewars-data", HEDGEWARS / "Music", ("*.ogg",)),
        SoundSet("foley", "hedgewars-data", HEDGEWARS / "Sounds", tuple(f"{s}.ogg" for s in _HW_FOLEY)),
        SoundSet("engine", "hedgewars-data", HEDGEWARS / "Sounds", ("plane.ogg", "rcplane.ogg", "jetpackboost.ogg")),
        SoundSet("nonverbal_vocal", "hedgewars-data", voices,
                 tuple(f"{p}/{s}.ogg" for p in HEDGEWARS_PACKS for s in HEDGEWARS_NONVERBAL), HEDGEWARS_HALF),
    ]  # fmt: skip


def matches(root: Path, patterns: tuple[str, ...], exclude: tuple[str, ...] = ()) -> list[Path]:
    """The files under ``root`` matching ``patterns``, sorted, without those whose stem holds an ``exclude``."""
    found = {p for pattern in patterns for p in root.glob(pattern) if p.is_file()}
    return sorted(p for p in found if not any(word in p.stem for word in exclude))
