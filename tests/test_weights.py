"""Weight registry, lookup order, downloads (HTTP and hub) and the ``weights`` sub-commands.

No test touches the real network. HTTP downloads go to a tiny server started
on 127.0.0.1 in a thread, which honours (or, on request, ignores) ``Range``
headers and can cut a response short; registry entries for those files are
built in the tests with checksums computed from the served bytes. The Hugging
Face path is exercised by replacing ``huggingface_hub.hf_hub_download`` and
``try_to_load_from_cache`` (the library's own boundary) with fakes that serve
a local file, and the library's cache folder is pointed at a temporary folder.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

import deepsound.weights.digest as digest_mod
from deepsound.cli.weights import weights_app
from deepsound.errors import WeightsError
from deepsound.weights import (
    REGISTRY,
    WeightFile,
    checksum_is_well_formed,
    download,
    locate,
    packaged_copy,
    resolve,
    verify_file,
)
from deepsound.weights.registry import SUBDIRS

REQUIRED_NAMES = {
    "mmaudio_small_16k",
    "mmaudio_small_44k",
    "mmaudio_medium_44k",
    "mmaudio_large_44k",
    "mmaudio_large_44k_v2",
    "vae_16k",
    "vae_44k",
    "bigvgan_16k",
    "synchformer",
    "clip_dfn5b",
    "clip_dfn5b_config",
    "bigvgan_v2_44k",
    "bigvgan_v2_44k_config",
    "bs_roformer_viperx",
    "bs_roformer_viperx_config",
}

PAYLOAD = bytes(range(256)) * 400 + b"tail"  # 102_404 bytes, not a multiple of any chunk size


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _md5(data: bytes) -> str:
    return "md5:" + hashlib.md5(data).hexdigest()


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test gets its own DeepSound cache and an empty Hugging Face cache; no offline switches."""
    import huggingface_hub.constants

    monkeypatch.setenv("DEEPSOUND_CACHE", str(tmp_path / "ds-cache"))
    monkeypatch.delenv("DEEPSOUND_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf-cache"))


# --------------------------------------------------------------------------- local HTTP server


@dataclass
class _Server:
    files: dict[str, bytes] = field(default_factory=dict)
    honour_range: bool = True
    cut_after: int | None = None  # send only this many body bytes, then close
    ranges: list[str | None] = field(default_factory=list)
    base: str = ""

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"


def _handler(server: _Server) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            data = server.files.get(self.path.lstrip("/"))
            header = self.headers.get("Range")
            server.ranges.append(header)
            if data is None:
                self.send_error(404)
                return
            start = 0
            if header and server.honour_range:
                start = int(re.fullmatch(r"bytes=(\d+)-", header).group(1))  # type: ignore[union-attr]
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if server.cut_after is not None:
                body = body[: server.cut_after]
            self.wfile.write(body)
            self.wfile.flush()

    return Handler


@pytest.fixture
def http_server() -> Iterator[_Server]:
    state = _Server()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def _url_entry(
    server: _Server, data: bytes = PAYLOAD, *, checksum: str | None = "auto", **kw: object
) -> WeightFile:
    server.files["files/model.pth"] = data
    fields: dict[str, object] = {
        "name": "test_model",
        "filename": "model.pth",
        "subdir": "ext_weights",
        "url": server.url("files/model.pth"),
        "checksum": _sha256(data) if checksum == "auto" else checksum,
        "size": len(data),
    }
    fields.update(kw)
    return WeightFile(**fields)  # type: ignore[arg-type]


def _local_entry(data: bytes = PAYLOAD, **kw: object) -> WeightFile:
    fields: dict[str, object] = {
        "name": "test_local",
        "filename": "local.pth",
        "subdir": "weights",
        "url": "https://example.invalid/local.pth",
        "checksum": _md5(data),
        "size": len(data),
    }
    fields.update(kw)
    return WeightFile(**fields)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- registry


def test_registry_has_every_name_others_use() -> None:
    assert REQUIRED_NAMES <= set(REGISTRY)


@pytest.mark.parametrize("name", sorted(REQUIRED_NAMES))
def test_registry_entry_is_well_formed(name: str) -> None:
    entry = REGISTRY[name]
    assert entry.name == name
    assert entry.subdir in SUBDIRS
    assert entry.subdir == ("weights" if name.startswith("mmaudio_") else "ext_weights")
    assert "/" not in entry.filename and entry.filename
    if entry.is_hub:
        assert entry.url is None
        assert re.fullmatch(r"[\w.-]+/[\w.-]+", entry.hub_repo or "")
        assert entry.hub_filename
        assert re.fullmatch(r"[0-9a-f]{40}", entry.hub_revision or ""), "hub files are pinned to a commit"
    else:
        assert entry.url is not None and entry.url.startswith("https://")
        assert entry.url.rsplit("/", 1)[-1] == entry.filename
    if entry.checksum is not None:
        assert checksum_is_well_formed(entry.checksum), entry.checksum
        assert entry.checksum_origin, "every checksum says where it was published"
    assert entry.size is None or entry.size > 0
    assert entry.licence


def test_mmaudio_files_carry_md5_and_hub_weights_sha256() -> None:
    for name in REQUIRED_NAMES:
        entry = REGISTRY[name]
        if entry.url and "hkchengrex/MMAudio" in entry.url:
            assert entry.checksum_algorithm == "md5"
    assert REGISTRY["clip_dfn5b"].checksum_algorithm == "sha256"
    assert REGISTRY["bigvgan_v2_44k"].checksum_algorithm == "sha256"


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("md5:" + "a" * 32, True),
        ("sha256:" + "0" * 64, True),
        ("md5:" + "a" * 31, False),
        ("sha256:" + "A" * 64, False),
        ("sha1:" + "a" * 40, False),
        ("a" * 32, False),
    ],
)
def test_checksum_format_check(text: str, ok: bool) -> None:
    assert checksum_is_well_formed(text) is ok


def test_packaged_roformer_config_is_consistent() -> None:
    path = packaged_copy(REGISTRY["bs_roformer_viperx_config"])
    assert path is not None
    config = yaml.safe_load(path.read_text())
    model = config["model"]
    assert sum(model["freqs_per_bands"]) == model["dim_freqs_in"] == model["stft_n_fft"] // 2 + 1
    assert len(model["freqs_per_bands"]) == 62
    assert config["audio"]["sample_rate"] == 44100
    assert config["training"]["target_instrument"] in config["training"]["instruments"]


# --------------------------------------------------------------------------- resolution order


def test_resolution_order(tmp_path: Path) -> None:
    entry = _local_entry(checksum=None, size=None)
    explicit = tmp_path / "somewhere" / "mine.pth"
    weights_dir = tmp_path / "wd"
    cache = tmp_path / "ds-cache"
    for path in (explicit, weights_dir / "weights" / "local.pth", cache / "weights" / "local.pth"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")

    assert resolve(entry, explicit=explicit, weights_dir=weights_dir, offline=True) == explicit
    assert resolve(entry, weights_dir=weights_dir, offline=True) == weights_dir / "weights" / "local.pth"
    assert resolve(entry, offline=True) == cache / "weights" / "local.pth"
    (cache / "weights" / "local.pth").unlink()
    with pytest.raises(WeightsError):
        resolve(entry, offline=True)


def test_explicit_missing_file_is_an_error_not_a_fallback(tmp_path: Path) -> None:
    entry = _local_entry()
    cached = tmp_path / "ds-cache" / entry.relpath
    cached.parent.mkdir(parents=True)
    cached.write_bytes(PAYLOAD)
    with pytest.raises(WeightsError, match=r"nope\.pth: file not found"):
        resolve(entry, explicit=tmp_path / "nope.pth", offline=True)


def test_explicit_folder_is_searched_in_layout(tmp_path: Path) -> None:
    entry = _local_entry()
    target = tmp_path / "folder" / "weights" / "local.pth"
    target.parent.mkdir(parents=True)
    target.write_bytes(PAYLOAD)
    assert resolve(entry, explicit=tmp_path / "folder", offline=True) == target


@pytest.mark.parametrize(
    "relative",
    ["ext_weights/config.json", "config.json", "ext_weights/bigvgan_v2_44khz_128band_512x/config.json"],
)
def test_weights_dir_layouts(tmp_path: Path, relative: str) -> None:
    entry = REGISTRY["bigvgan_v2_44k_config"]
    data = b"{" + b" " * (entry.size - 2) + b"}"  # type: ignore[operator]
    path = tmp_path / "wd" / relative
    path.parent.mkdir(parents=True)
    path.write_bytes(data)
    assert resolve("bigvgan_v2_44k_config", weights_dir=tmp_path / "wd", offline=True) == path


def test_mmaudio_layout_for_a_network(tmp_path: Path) -> None:
    path = tmp_path / "wd" / "weights" / "mmaudio_small_16k.pth"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"too short")
    assert resolve("mmaudio_small_16k", weights_dir=tmp_path / "wd", verify="none") == path
    with pytest.raises(WeightsError, match=r"expected 629395261 bytes, found 9"):
        resolve("mmaudio_small_16k", weights_dir=tmp_path / "wd")  # default verify="size"


def test_offline_missing_error_is_a_summary_and_one_line_per_file(tmp_path: Path) -> None:
    with pytest.raises(WeightsError) as info:
        resolve("vae_44k", weights_dir=tmp_path / "wd", offline=True)
    summary, file_line, advice = str(info.value).splitlines()
    assert summary == "1 weight file missing (1.22 GB) and downloads are off (--offline):"
    assert file_line.startswith("  ext_weights/v1-44.pth") and "github.com/hkchengrex/MMAudio" in file_line
    assert str(tmp_path / "wd") in advice and "deepsound weights download vae_44k" in advice
    assert "hf://" not in str(info.value)


def test_offline_from_environment(monkeypatch: pytest.MonkeyPatch, http_server: _Server) -> None:
    entry = _url_entry(http_server)
    monkeypatch.setenv("DEEPSOUND_OFFLINE", "1")
    with pytest.raises(WeightsError, match="offline"):
        resolve(entry)
    assert http_server.ranges == []


def test_packaged_config_used_when_nothing_local(tmp_path: Path) -> None:
    path = resolve("bs_roformer_viperx_config", offline=True)
    assert path == packaged_copy(REGISTRY["bs_roformer_viperx_config"])
    # a user's own copy still takes precedence
    mine = tmp_path / "wd" / "ext_weights" / "model_bs_roformer_ep_317_sdr_12.9755.yaml"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"x" * 1881)
    found = resolve("bs_roformer_viperx_config", weights_dir=tmp_path / "wd", offline=True, verify="size")
    assert found == mine
    # by default a file is checked by checksum before use: right size, wrong bytes is refused,
    # and a file in the user's own folder is left where it is
    with pytest.raises(WeightsError, match="checksum mismatch"):
        resolve("bs_roformer_viperx_config", weights_dir=tmp_path / "wd", offline=True)
    assert mine.exists()


def test_bad_cached_copy_is_removed_not_used(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    bad = cache / "ext_weights" / "model_bs_roformer_ep_317_sdr_12.9755.yaml"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"y" * 1881)
    with pytest.raises(WeightsError, match="removed the bad copy"):
        resolve("bs_roformer_viperx_config", cache_dir=cache, offline=True)
    assert not bad.exists()


# --------------------------------------------------------------------------- verification


def test_verify_checksum_and_mismatch_message(tmp_path: Path) -> None:
    entry = _local_entry()
    path = tmp_path / "local.pth"
    path.write_bytes(PAYLOAD)
    assert verify_file(entry, path, verify="checksum") == path
    bad = bytearray(PAYLOAD)
    bad[10] ^= 0xFF
    path.write_bytes(bytes(bad))
    with pytest.raises(WeightsError) as info:
        verify_file(entry, path, verify="checksum")
    actual = hashlib.md5(bytes(bad)).hexdigest()
    assert f"expected {entry.checksum}" in str(info.value)
    assert f"got md5:{actual}" in str(info.value)
    assert "local.pth" in str(info.value)


def test_checksum_result_is_cached_by_size_and_mtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = _local_entry()
    path = tmp_path / "local.pth"
    path.write_bytes(PAYLOAD)
    calls: list[Path] = []
    real = digest_mod.file_digest

    def counting(p: Path, algorithm: str) -> str:
        calls.append(p)
        return real(p, algorithm)

    monkeypatch.setattr(digest_mod, "file_digest", counting)
    stamps = tmp_path / "stamps"
    verify_file(entry, path, verify="checksum", stamp_dir=stamps)
    verify_file(entry, path, verify="checksum", stamp_dir=stamps)
    assert len(calls) == 1, "second check must come from the stamp"
    assert list(stamps.glob("*.verified"))

    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    verify_file(entry, path, verify="checksum", stamp_dir=stamps)
    assert len(calls) == 2, "a changed mtime invalidates the stamp"

    verify_file(entry, path, verify="checksum", stamp_dir=stamps, recompute=True)
    assert len(calls) == 3


def test_resolve_with_checksum_uses_cache_stamp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    entry = _local_entry()
    path = tmp_path / "wd" / "weights" / "local.pth"
    path.parent.mkdir(parents=True)
    path.write_bytes(PAYLOAD)
    resolve(entry, weights_dir=tmp_path / "wd", verify="checksum", offline=True)
    assert list((tmp_path / "ds-cache" / "verified").glob("*.verified"))
    monkeypatch.setattr(digest_mod, "file_digest", lambda *a: pytest.fail("should use the stamp"))
    assert resolve(entry, weights_dir=tmp_path / "wd", verify="checksum", offline=True) == path


# --------------------------------------------------------------------------- HTTP downloads


def test_http_download_into_cache(tmp_path: Path, http_server: _Server) -> None:
    entry = _url_entry(http_server)
    path = resolve(entry)
    assert path == tmp_path / "ds-cache" / "ext_weights" / "model.pth"
    assert path.read_bytes() == PAYLOAD
    assert not path.with_name("model.pth.part").exists()
    assert http_server.ranges == [None]
    # second call finds it in the cache, no request
    assert resolve(entry, verify="checksum") == path
    assert len(http_server.ranges) == 1


def test_http_download_resumes_partial_file(tmp_path: Path, http_server: _Server) -> None:
    entry = _url_entry(http_server)
    dest = tmp_path / "ds-cache" / "ext_weights" / "model.pth"
    dest.parent.mkdir(parents=True)
    dest.with_name("model.pth.part").write_bytes(PAYLOAD[:40_000])
    assert resolve(entry) == dest
    assert http_server.ranges == ["bytes=40000-"]
    assert dest.read_bytes() == PAYLOAD


def test_http_download_restarts_when_server_ignores_range(tmp_path: Path, http_server: _Server) -> None:
    http_server.honour_range = False
    entry = _url_entry(http_server)
    dest = tmp_path / "ds-cache" / "ext_weights" / "model.pth"
    dest.parent.mkdir(parents=True)
    dest.with_name("model.pth.part").write_bytes(b"garbage that must not stay in front")
    assert resolve(entry) == dest
    assert dest.read_bytes() == PAYLOAD


def test_http_download_interrupted_then_resumed(tmp_path: Path, http_server: _Server) -> None:
    entry = _url_entry(http_server)
    part = tmp_path / "ds-cache" / "ext_weights" / "model.pth.part"
    http_server.cut_after = 30_000
    with pytest.raises(WeightsError, match="run the same command again"):
        resolve(entry)
    assert part.stat().st_size == 30_000
    assert not part.with_suffix("").exists()
    http_server.cut_after = None
    path = resolve(entry)
    assert http_server.ranges[-1] == "bytes=30000-"
    assert path.read_bytes() == PAYLOAD


def test_http_download_checksum_mismatch(tmp_path: Path, http_server: _Server) -> None:
    wrong = _md5(b"something else")
    entry = _url_entry(http_server, checksum=wrong)
    with pytest.raises(WeightsError) as info:
        resolve(entry)
    message = str(info.value)
    assert f"expected {wrong}" in message
    assert f"got {_md5(PAYLOAD)}" in message
    assert "model.pth" in message
    folder = tmp_path / "ds-cache" / "ext_weights"
    assert not (folder / "model.pth").exists()
    assert not (folder / "model.pth.part").exists()


def test_http_download_wrong_size_is_rejected(tmp_path: Path, http_server: _Server) -> None:
    entry = _url_entry(http_server, size=len(PAYLOAD) + 5)
    with pytest.raises(WeightsError):
        resolve(entry)
    assert not (tmp_path / "ds-cache" / "ext_weights" / "model.pth").exists()


def test_http_404_is_a_weights_error(http_server: _Server) -> None:
    entry = replace(_url_entry(http_server), url=http_server.url("missing.pth"))
    with pytest.raises(WeightsError, match="HTTP 404"):
        resolve(entry)


def test_download_function_replaces_a_corrupt_copy(tmp_path: Path, http_server: _Server) -> None:
    entry = _url_entry(http_server)
    dest = tmp_path / "wd" / "ext_weights" / "model.pth"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"\0" * len(PAYLOAD))
    assert download(entry, dest_root=tmp_path / "wd", show_progress=False) == dest
    assert dest.read_bytes() == PAYLOAD


# --------------------------------------------------------------------------- Hugging Face hub


def _hub_entry(data: bytes = PAYLOAD, **kw: object) -> WeightFile:
    fields: dict[str, object] = {
        "name": "test_hub",
        "filename": "gen.pt",
        "subdir": "ext_weights",
        "hub_repo": "someone/some-model",
        "hub_filename": "gen.pt",
        "hub_revision": "a" * 40,
        "checksum": _sha256(data),
        "size": len(data),
    }
    fields.update(kw)
    return WeightFile(**fields)  # type: ignore[arg-type]


@pytest.fixture
def fake_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, list]:
    import huggingface_hub

    store = tmp_path / "fake-hub"
    calls: dict[str, list] = {"download": [], "cache": []}
    cached: dict[tuple[str, str, str | None], Path] = {}

    def hf_hub_download(
        repo_id: str, filename: str, *, revision: str | None = None, local_dir=None, **_: object
    ):
        calls["download"].append((repo_id, filename, revision, local_dir))
        folder = Path(local_dir) if local_dir is not None else store / repo_id / (revision or "main")
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / filename
        path.write_bytes(calls.setdefault("payload", [PAYLOAD])[0])
        cached[(repo_id, filename, revision)] = path
        return str(path)

    def try_to_load_from_cache(repo_id: str, filename: str, cache_dir=None, revision=None, repo_type=None):
        calls["cache"].append((repo_id, filename, revision))
        found = cached.get((repo_id, filename, revision))
        return str(found) if found else None

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", hf_hub_download)
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", try_to_load_from_cache)
    calls["seed"] = [cached]
    return calls


def test_hub_file_downloaded_through_huggingface_hub(fake_hub: dict[str, list]) -> None:
    entry = _hub_entry()
    path = resolve(entry, verify="checksum")
    assert path.read_bytes() == PAYLOAD
    assert fake_hub["download"] == [("someone/some-model", "gen.pt", "a" * 40, None)]
    # now in the (fake) hub cache: found without another download, also offline
    assert resolve(entry, offline=True) == path
    assert len(fake_hub["download"]) == 1


def test_hub_cache_main_revision_accepted(tmp_path: Path, fake_hub: dict[str, list]) -> None:
    entry = _hub_entry()
    cached_file = tmp_path / "elsewhere" / "gen.pt"
    cached_file.parent.mkdir(parents=True)
    cached_file.write_bytes(PAYLOAD)
    fake_hub["seed"][0][("someone/some-model", "gen.pt", None)] = cached_file
    assert resolve(entry, offline=True, verify="checksum") == cached_file
    assert fake_hub["download"] == []


def test_hub_download_with_bad_content_is_rejected(fake_hub: dict[str, list]) -> None:
    entry = _hub_entry()
    fake_hub["payload"] = [PAYLOAD[:-1] + b"X"]
    with pytest.raises(WeightsError, match="checksum mismatch"):
        resolve(entry, verify="checksum")


def test_hub_offline_missing(fake_hub: dict[str, list]) -> None:
    with pytest.raises(WeightsError, match=r"from huggingface.co/someone/some-model"):
        resolve(_hub_entry(), offline=True)
    assert fake_hub["download"] == []


def test_hub_download_into_weights_dir(tmp_path: Path, fake_hub: dict[str, list]) -> None:
    entry = _hub_entry()
    path = download(entry, dest_root=tmp_path / "wd")
    assert path == tmp_path / "wd" / "ext_weights" / "gen.pt"
    assert locate(entry, weights_dir=tmp_path / "wd") == ("weights_dir", path)


# --------------------------------------------------------------------------- CLI


runner = CliRunner()


def test_cli_list_shows_every_entry_and_missing_checksums(tmp_path: Path) -> None:
    present = tmp_path / "wd" / "ext_weights" / "v1-44.pth"
    present.parent.mkdir(parents=True)
    present.write_bytes(b"x")
    result = runner.invoke(weights_app, ["list", "--weights-dir", str(tmp_path / "wd"), "--offline"])
    assert result.exit_code == 0, result.output
    for name in REQUIRED_NAMES:
        assert name in result.output
    assert "recorded on first use" in result.output
    assert "No published checksum for:" in result.output and "clip_dfn5b_config" in result.output
    assert "weights_dir" in result.output and "v1-44.pth" in result.output


def test_cli_download_offline_missing_exits_nonzero(tmp_path: Path) -> None:
    result = runner.invoke(weights_app, ["download", "vae_16k", "--offline", "--weights-dir", str(tmp_path)])
    assert result.exit_code == WeightsError.exit_code
    assert "v1-16.pth" in result.output and "offline" in result.output


def test_cli_download_needs_names_or_all() -> None:
    result = runner.invoke(weights_app, ["download"])
    assert result.exit_code != 0
    assert "--all" in result.output


def test_cli_download_unknown_name() -> None:
    result = runner.invoke(weights_app, ["download", "no_such_model", "--offline"])
    assert result.exit_code != 0
    assert "unknown weight file" in result.output


def test_cli_download_and_verify_over_http(
    tmp_path: Path, http_server: _Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    entry = _url_entry(http_server)
    monkeypatch.setitem(REGISTRY, entry.name, entry)
    wd = tmp_path / "wd"
    result = runner.invoke(weights_app, ["download", entry.name, "--weights-dir", str(wd)])
    assert result.exit_code == 0, result.output
    target = wd / "ext_weights" / "model.pth"
    assert target.read_bytes() == PAYLOAD

    result = runner.invoke(weights_app, ["verify", entry.name, "--weights-dir", str(wd)])
    assert result.exit_code == 0, result.output
    assert "ok" in result.output

    corrupted = bytearray(PAYLOAD)
    corrupted[-1] ^= 1
    target.write_bytes(bytes(corrupted))
    result = runner.invoke(weights_app, ["verify", entry.name, "--weights-dir", str(wd)])
    assert result.exit_code == WeightsError.exit_code
    assert "FAILED" in result.output


def test_cli_verify_named_missing_fails_but_default_skips(tmp_path: Path) -> None:
    result = runner.invoke(weights_app, ["verify", "vae_16k", "--weights-dir", str(tmp_path)])
    assert result.exit_code != 0
    assert "missing" in result.output
    result = runner.invoke(weights_app, ["verify", "--weights-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "not present" in result.output


def test_hub_download_with_wrong_checksum_is_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    resolve_module = importlib.import_module("deepsound.weights.resolve")

    entry = WeightFile(
        name="tiny_hub_file", filename="f.bin", subdir="ext_weights", hub_repo="someone/tiny",
        hub_filename="f.bin", checksum="sha256:" + "0" * 64, size=16,
    )  # fmt: skip
    fetched: list[Path] = []

    def fake_download_hub(e, *, local_dir=None):  # a download that arrived with other bytes
        blob = tmp_path / "blobs" / "deadbeef"
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(b"z" * (e.size or 10))
        link = tmp_path / "snap" / e.hub_filename
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(blob)
        fetched.append(link)
        return link

    monkeypatch.setattr(resolve_module, "download_hub", fake_download_hub)
    monkeypatch.setattr(resolve_module, "hub_cached", lambda e: None)
    for call in (
        lambda: resolve_module.download(entry, cache_dir=tmp_path / "c"),
        lambda: resolve_module.resolve(entry, cache_dir=tmp_path / "c2"),
    ):
        with pytest.raises(WeightsError, match="checksum mismatch.*removed the bad copy"):
            call()
        assert not fetched[-1].exists() and not (tmp_path / "blobs" / "deadbeef").exists()


def test_weights_download_fetches_a_whole_folder_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import huggingface_hub

    asked: list[tuple[str, str | None]] = []

    def fake_snapshot(repo_id, revision=None, local_dir=None):
        asked.append((repo_id, local_dir))
        folder = Path(local_dir)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text("{}")
        return str(folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    path = download("videollama2-cot", dest_root=tmp_path / "w")
    assert asked == [
        ("lym0302/VideoLLaMA2.1-7B-AV-CoT", str(tmp_path / "w" / "ext_weights" / "VideoLLaMA2.1-7B-AV-CoT"))
    ]
    assert (path / "config.json").is_file()
