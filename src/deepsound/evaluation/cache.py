"""Feature caches in av-benchmark's own format, and a manifest that says what is still valid.

A cache folder holds av-benchmark's files (``pann_features.pth``,
``vggish_features.pth``, ``passt_features_embed.pth``, ``passt_logits.pth``,
``imagebind_audio.pth`` / ``imagebind_video.pth``, ``synchformer_audio.pth`` /
``synchformer_video.pth``): each a ``torch.save`` of a dict from file stem to
that file's features, stems in sorted order as av-benchmark's extraction
writes them. So av-benchmark's ``evaluate`` reads our caches and we read its
caches, including the released reference caches, unchanged.

Beside them, ``deepsound_manifest.json`` records for each model the
fingerprint it ran with (weight checksum, settings) and for each stem the
sha256 of the input file. Only files that are new, changed, or were made
under another fingerprint are extracted again; stems whose files are gone
are dropped. A folder without a manifest is someone else's cache (a released
reference set): it is read as it is and never written to.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

import torch

from deepsound.errors import ConfigError, OutputError
from deepsound.files import atomic_output, ensure_dir, write_json

log = logging.getLogger(__name__)

MANIFEST = "deepsound_manifest.json"
FORMAT_VERSION = 1
KNOWN_FILES = (
    "pann_features.pth",
    "vggish_features.pth",
    "passt_features_embed.pth",
    "passt_logits.pth",
    "imagebind_audio.pth",
    "imagebind_video.pth",
    "synchformer_audio.pth",
    "synchformer_video.pth",
    "silero_speech.pth",  # ours: speech ratio and segment count of Silero VAD per file
)


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def is_cache_folder(path: Path) -> bool:
    """A folder holding at least one av-benchmark cache file (a released cache, or one of ours)."""
    return Path(path).is_dir() and any((Path(path) / name).is_file() for name in KNOWN_FILES)


def _fingerprint_key(fingerprint: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()[:16]


class FeatureCache:
    """One side's features (generated or reference), file name → {stem: entry}."""

    def __init__(self, folder: Path, *, read_only: bool = False) -> None:
        self.folder = Path(folder)
        manifest_path = self.folder / MANIFEST
        # A folder with av-benchmark files but no manifest is a foreign (released) cache.
        self.foreign = is_cache_folder(self.folder) and not manifest_path.exists()
        self.read_only = read_only or self.foreign
        self._files: dict[str, dict[str, Any]] = {}
        self._dirty: set[str] = set()
        self.manifest: dict[str, Any] = {"format": FORMAT_VERSION, "models": {}}
        if manifest_path.exists():
            try:
                self.manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            except ValueError:
                log.warning("%s: unreadable manifest; every file will be extracted again", manifest_path)
            if self.manifest.get("format") != FORMAT_VERSION:
                self.manifest = {"format": FORMAT_VERSION, "models": {}}

    # ------------------------------------------------------------------ reading
    def get(self, name: str) -> dict[str, Any]:
        """The dict stored in ``name`` (empty when absent), loaded once."""
        if name not in self._files:
            path = self.folder / name
            if path.is_file():
                try:
                    data = torch.load(path, map_location="cpu", weights_only=True)
                except Exception as exc:  # noqa: BLE001 - a truncated or foreign file
                    if self.read_only:
                        raise ConfigError(f"{path}: not a readable feature cache ({exc})") from None
                    log.warning("%s: unreadable (%s); extracting again", path, exc)
                    data = {}
                if not isinstance(data, dict):
                    raise ConfigError(f"{path}: not an av-benchmark cache (a dict of stem → features)")
                self._files[name] = dict(data)
            else:
                self._files[name] = {}
        return self._files[name]

    def all(self) -> dict[str, dict[str, Any]]:
        """Every non-empty file; ours in sorted stem order, a foreign cache in its own order
        (the order av-benchmark would read it in)."""
        out = {}
        for name in KNOWN_FILES:
            data = self.get(name)
            if data:
                out[name] = data if self.foreign else {k: data[k] for k in sorted(data)}
        return out

    # ------------------------------------------------------------------ validity
    def _model(self, key: str) -> dict[str, Any]:
        entry = self.manifest["models"].setdefault(key, {"fingerprint": None, "stems": {}})
        entry.setdefault("failed", {})
        return entry

    def stale(self, key: str, files: tuple[str, ...], fingerprint: dict[str, Any], digests: dict[str, str]):
        """Stems of ``digests`` that model ``key`` must extract: new, changed, or under another
        fingerprint. Stems no longer present are removed from its files."""
        if self.foreign:
            return []
        entry = self._model(key)
        fp = _fingerprint_key(fingerprint)
        if entry.get("fingerprint") != fp:
            if entry.get("stems"):
                log.info("%s: settings or weights changed; extracting every file again", key)
            entry.update(fingerprint=fp, settings=fingerprint, stems={}, failed={})
        known = entry["stems"]
        gone = {s for s in known if s not in digests}
        gone |= {s for f in files for s in self.get(f) if s not in digests}
        for stem in sorted(gone):
            self.drop(key, files, stem)
        failed = entry["failed"]
        for stem in [s for s in failed if failed[s]["sha256"] != digests.get(s)]:
            del failed[stem]
        todo = []
        for stem, digest in digests.items():
            if stem in failed:
                continue  # failed before on this very file with these settings: not tried again
            if known.get(stem) != digest or any(stem not in self.get(f) for f in files):
                todo.append(stem)
        return todo

    def failures(self, key: str) -> dict[str, str]:
        """Stems model ``key`` could not take (the file unchanged since), with the reason."""
        if self.foreign:
            return {}
        return {stem: f["reason"] for stem, f in self._model(key)["failed"].items()}

    def fail(self, key: str, files: tuple[str, ...], stem: str, digest: str, reason: str) -> None:
        self.drop(key, files, stem)
        if not self.read_only:
            self._model(key)["failed"][stem] = {"sha256": digest, "reason": reason}

    def drop(self, key: str, files: tuple[str, ...], stem: str) -> None:
        self._model(key)["stems"].pop(stem, None)
        self._model(key)["failed"].pop(stem, None)
        for name in files:
            if self.get(name).pop(stem, None) is not None:
                self._dirty.add(name)

    def put(self, key: str, stem: str, digest: str, entries: dict[str, Any]) -> None:
        if self.read_only:
            raise OutputError(f"{self.folder}: a released cache is read-only")
        for name, value in entries.items():
            self.get(name)[stem] = value
            self._dirty.add(name)
        self._model(key)["stems"][stem] = digest

    # ------------------------------------------------------------------ writing
    def save(self) -> None:
        """Write changed files (stems sorted, as av-benchmark orders them), then the manifest."""
        if self.read_only:
            return
        ensure_dir(self.folder)
        for name in sorted(self._dirty):
            data = {stem: self._files[name][stem] for stem in sorted(self._files[name])}
            self._files[name] = data
            with atomic_output(self.folder / name) as tmp:
                torch.save(data, tmp)
        self._dirty.clear()
        write_json(self.folder / MANIFEST, self.manifest)
