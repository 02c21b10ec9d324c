"""Regenerate the golden files under ``tests/data`` from local checkouts of the official code.

    python tools/make_goldens.py mmaudio --official ~/src/MMAudio
    python tools/make_goldens.py bs_roformer --official ~/src/DeepSound-V1 --upstream ~/src/MSST
    python tools/make_goldens.py all --mmaudio-official ... --bs_roformer-official ... --compare

Families are the modules of ``tools/goldens`` (see its ``__init__`` for the convention); ``all`` runs
every family, each option of a family prefixed with its name. By default the files are written in
place (``--out tests/data``); ``--compare`` writes them to a temporary folder instead and reports the
largest difference from each committed file, which is how a regeneration is checked before it is
committed. Run it with a Python that can import the official code (its dependencies installed).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

TOOLS = Path(__file__).resolve().parent
ROOT = TOOLS.parent
# our package (for deepsound.testing) from this checkout, and the golden families beside this file
sys.path[:0] = [str(ROOT / "src"), str(TOOLS)]


def families() -> dict[str, ModuleType]:
    import goldens

    found = {}
    for info in pkgutil.iter_modules(goldens.__path__):
        if not info.name.startswith("_"):
            module = importlib.import_module(f"goldens.{info.name}")
            if all(hasattr(module, a) for a in ("add_arguments", "main")):
                found[info.name] = module
    return found


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=ROOT / "tests" / "data", help="folder like tests/data")
    parser.add_argument(
        "--compare", action="store_true", help="write to a temporary folder and compare with --out"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")


def _prefixed(parser: argparse.ArgumentParser, name: str, module: ModuleType) -> list[str]:
    """Copy a family's options into ``parser`` as ``--<name>-<option>``; returns their dests."""
    scratch = argparse.ArgumentParser(add_help=False)
    module.add_arguments(scratch)
    group = parser.add_argument_group(name)
    dests = []
    for action in scratch._actions:
        flags = [f"--{name}-{s.lstrip('-')}" for s in action.option_strings if s.startswith("--")]
        kwargs = {"dest": f"{name}.{action.dest}", "default": action.default, "help": action.help}
        if action.nargs == 0:
            kwargs["action"] = "store_true"
        else:
            kwargs.update(type=action.type, nargs=action.nargs, choices=action.choices)
            kwargs["metavar"] = action.metavar or (None if action.choices else action.dest.upper())
            kwargs["required"] = action.required
        group.add_argument(*flags, **kwargs)
        dests.append(action.dest)
    return dests


def build_parser(found: dict[str, ModuleType]) -> tuple[argparse.ArgumentParser, dict[str, list[str]]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="family", required=True)
    for name, module in found.items():
        p = sub.add_parser(name, help=getattr(module, "DESCRIPTION", name))
        _common(p)
        module.add_arguments(p)
    every = sub.add_parser("all", help="every family")
    _common(every)
    dests = {name: _prefixed(every, name, module) for name, module in found.items()}
    return parser, dests


def run(name: str, module: ModuleType, args: argparse.Namespace) -> list[Path]:
    start = time.perf_counter()
    written = module.main(args)
    print(f"[{name}] wrote {len(written)} files in {time.perf_counter() - start:.0f} s")
    return written


def main(argv: list[str] | None = None) -> int:
    found = families()
    parser, dests = build_parser(found)
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    committed = args.out
    with tempfile.TemporaryDirectory(prefix="goldens-") as tmp:
        out = Path(tmp) if args.compare else committed
        jobs = []
        if args.family == "all":
            for name, module in found.items():
                ns = argparse.Namespace(out=out, compare=args.compare, threads=args.threads)
                for dest in dests[name]:
                    setattr(ns, dest, getattr(args, f"{name}.{dest}"))
                jobs.append((name, module, ns))
        else:
            args.out = out
            jobs.append((args.family, found[args.family], args))
        failed = 0
        for name, module, ns in jobs:
            written = run(name, module, ns)
            if args.compare:
                from goldens._compare import report

                failed += report(written, out, committed)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
