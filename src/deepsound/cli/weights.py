"""``deepsound weights …``: see, fetch and check the published weight files.

Kept apart from the model code so that a user can prepare an offline machine
(``download``), audit a copied folder (``verify``) or find out why a run
cannot find a file (``list``) without loading any network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from deepsound.cli.text import error_line, plain
from deepsound.errors import DeepSoundError, WeightsError
from deepsound.weights import REGISTRY, WeightFile, download, get, locate, resolve, verify_file
from deepsound.weights.overrides import parse_override
from deepsound.weights.resolve import default_cache_dir, stamp_dir_for

weights_app = typer.Typer(
    name="weights",
    help="List, download and verify the published weight files.",
    no_args_is_help=True,
    add_completion=False,
)

WeightsDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--weights-dir",
        help="Folder in MMAudio's layout (weights/, ext_weights/) or holding the files directly.",
    ),
]
OfflineOpt = Annotated[bool, typer.Option("--offline", help="Never touch the network.")]
CacheOpt = Annotated[
    Path | None,
    typer.Option("--cache-dir", help="DeepSound cache (default: $DEEPSOUND_CACHE or ~/.cache/deepsound)."),
]
NamesArg = Annotated[
    list[str] | None,
    typer.Argument(
        help="Registry names, or a component's (e.g. foleycrafter) (default: all).", show_default=False
    ),
]


def _console() -> Console:
    """A terminal keeps its width; piped output gets room for the long URLs instead of 80 columns."""
    console = Console()
    return console if console.is_terminal else Console(width=200)


def _fail(exc: DeepSoundError) -> typer.Exit:
    Console(stderr=True, soft_wrap=True).print(error_line(exc), highlight=False)
    return typer.Exit(code=getattr(exc, "exit_code", 2))


def _entries(names: list[str] | None) -> list[WeightFile]:
    """Registry names, or a component's name (``foleycrafter``) for every file it loads by default."""
    if not names:
        return list(REGISTRY.values())
    from deepsound import registry

    out: list[WeightFile] = []
    for name in names:
        component = (
            None
            if name in REGISTRY
            else next(
                (
                    e
                    for kind in registry.KINDS
                    if (e := registry.find(kind, name)) is not None and e.weight_files
                ),
                None,
            )
        )
        listed = component.files(component.default_settings()) if component is not None else [name]
        out += [get(n) for n in listed if get(n) not in out]
    return out


def _human(size: int | None) -> str:
    if size is None:
        return "unknown"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1000
    return str(size)


def _checksum_label(entry: WeightFile) -> str:
    if entry.checksum is None:
        return "none published"
    if entry.trust_on_first_use:
        return "unknown: recorded on first use"
    return f"{entry.checksum_algorithm}:{entry.checksum_hex[:12]}…"  # type: ignore[index]


@weights_app.command("list")
def list_command(
    weights_dir: WeightsDirOpt = None, offline: OfflineOpt = False, cache_dir: CacheOpt = None
) -> None:
    """Show every registered file, its source and checksum, and where a local copy is (if any)."""
    # ``list`` never downloads; --offline is accepted so scripts can pass the same flags everywhere.
    del offline
    from deepsound.registry import users_of_files

    users = users_of_files()  # which registered component loads each file (from the entries)
    table = Table(title="DeepSound weight files", show_lines=False)
    for column in ("name", "file", "used by", "source", "size", "checksum", "present"):
        table.add_column(column, overflow="fold")
    unknown: list[str] = []
    for entry in REGISTRY.values():
        found = locate(entry, weights_dir=weights_dir, cache_dir=cache_dir)
        present = f"{found[0]}: {found[1]}" if found else "no"
        if entry.checksum is None or entry.trust_on_first_use:
            unknown.append(entry.name)
        used_by = ", ".join(users.get(entry.name, [])) or "-"
        table.add_row(
            entry.name,
            entry.relpath,
            used_by,
            entry.source,
            _human(entry.size),
            _checksum_label(entry),
            plain(present),
        )
    console = _console()
    console.print(table)
    if unknown:
        console.print(
            f"No published checksum for: {', '.join(unknown)}; the first copy used is recorded "
            "(SHA-256 and size, trust on first use) and later copies are checked against it.",
            highlight=False,
        )


@weights_app.command("download")
def download_command(
    names: NamesArg = None,
    all_: Annotated[bool, typer.Option("--all", help="Download every registered file.")] = False,
    weights_dir: WeightsDirOpt = None,
    offline: OfflineOpt = False,
    cache_dir: CacheOpt = None,
) -> None:
    """Fetch files (into --weights-dir in MMAudio's layout, else the caches) and check them."""
    if not names and not all_:
        raise _fail(WeightsError("name the files to download (see `deepsound weights list`) or pass --all"))
    console = _console()
    try:
        entries = _entries(names)
        for entry in entries:
            if offline:
                path = resolve(entry, weights_dir=weights_dir, cache_dir=cache_dir, offline=True)
            else:
                path = download(entry, dest_root=weights_dir, cache_dir=cache_dir)
            console.print(f"{entry.name}: {path}", highlight=False, markup=False)
    except DeepSoundError as exc:
        raise _fail(exc) from None


@weights_app.command("verify")
def verify_command(
    names: NamesArg = None,
    weights_dir: WeightsDirOpt = None,
    offline: OfflineOpt = False,
    cache_dir: CacheOpt = None,
    own: Annotated[
        list[str] | None,
        typer.Option("--weights", help="NAME=PATH: your own file for a published one; reported, not failed."),
    ] = None,
) -> None:
    """Recompute the checksums of present files; exit non-zero if any fails (or a named file is missing).

    Files given with ``--weights NAME=PATH`` are the user's own (fine-tuned, converted): they are
    listed as differing from the published file or not, and never fail the check.
    """
    del offline  # verification never downloads
    try:
        entries = _entries(names)
        overrides = dict(parse_override(v) for v in own or [])
    except DeepSoundError as exc:
        raise _fail(exc) from None
    stamps = stamp_dir_for(Path(cache_dir) if cache_dir is not None else default_cache_dir())
    table = Table(title="Verification")
    for column in ("name", "path", "result"):
        table.add_column(column, overflow="fold")
    failures = 0
    differ: list[str] = []  # the user's own files that are not the published bytes (expected, not a failure)
    damaged: list[str] = []  # copies of the published files that fail their check
    for name, path in overrides.items():
        entry = get(name)
        if entry.trust_on_first_use and Path(path).is_file():
            table.add_row(name, plain(path), "your own file (no published checksum to compare with)")
            continue
        try:
            verify_file(
                entry, path, verify="checksum", stamp_dir=stamps, recompute=True, trust_first_use=False
            )
            table.add_row(name, plain(path), "your own file: identical to the published one")
        except WeightsError as exc:
            differ.append(name)
            reason = "missing" if not Path(path).is_file() else str(exc).split(": ", 1)[-1].split(";")[0]
            table.add_row(
                name, plain(path), plain(f"your own file: differs from the published one ({reason})")
            )
    for entry in entries:
        if entry.name in overrides:
            continue
        found = locate(entry, weights_dir=weights_dir, cache_dir=cache_dir, include_packaged=False)
        if found is None:
            failures += bool(names)  # only a file asked for by name must be present
            table.add_row(entry.name, "-", "missing" if names else "not present (skipped)")
            continue
        path = found[1]
        try:
            verify_file(entry, path, verify="checksum", stamp_dir=stamps, recompute=True)
        except WeightsError as exc:
            failures += 1
            damaged.append(entry.name)
            table.add_row(entry.name, plain(path), plain(f"FAILED: {exc}"))
            continue
        result = "ok"
        if entry.trust_on_first_use:
            result = "ok (matches the copy recorded on first use; no published checksum)"
        elif entry.checksum is None:
            result = "ok (size only: no published checksum)"
        table.add_row(entry.name, plain(path), result)
    _console().print(table)
    if differ:
        _console().print(
            f"Differ from the published files: {', '.join(differ)}", highlight=False, markup=False
        )
    if damaged:
        _console().print(
            f"Damaged or incomplete copies of published files: {', '.join(damaged)}; delete them and run "
            f"`deepsound weights download {' '.join(damaged)}`",
            highlight=False,
            markup=False,
        )
    if failures:
        raise typer.Exit(code=WeightsError.exit_code)
