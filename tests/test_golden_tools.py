"""The golden-making tools: discoverable families, commits named by the tests, kept out of ``src``.

The tools themselves run the official code, which the test environment does not have; what can be
checked here is the contract between them and the tests: every family is found by the dispatcher,
every test file whose goldens a family writes names that family's pinned commit, and no production
module imports the tools.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools"

# test file -> (family, name of the commit constant in it)
CITED = {
    "test_mmaudio_network.py": ("mmaudio", "COMMIT"),
    "test_mmaudio_conditioning.py": ("mmaudio", "COMMIT"),
    "test_mmaudio_decoding.py": ("mmaudio", "COMMIT"),
    "test_mmaudio_generator.py": ("mmaudio", "COMMIT"),
    "test_media.py": ("mmaudio", "COMMIT"),
    "test_separation.py": ("bs_roformer", "PAPER_COMMIT"),
    "test_foleycrafter.py": ("foleycrafter", "COMMIT"),
}


@pytest.fixture(scope="module")
def dispatcher():
    spec = importlib.util.spec_from_file_location("make_goldens", TOOLS / "make_goldens.py")
    module = importlib.util.module_from_spec(spec)
    saved = list(sys.path)
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path[:] = saved


def test_dispatcher_finds_every_family_and_prefixes_their_options(dispatcher):
    found = dispatcher.families()
    assert {"mmaudio", "bs_roformer", "media", "deepsound_pipeline"} <= found.keys()
    assert not any(name.startswith("_") for name in found)
    parser, _ = dispatcher.build_parser(found)
    args = parser.parse_args(
        ["all", "--mmaudio-official", "/m", "--bs_roformer-official", "/d", "--bs_roformer-upstream", "/u"]
        + ["--media-official", "/m", "--deepsound_pipeline-official", "/p", "--compare"]
    )
    assert getattr(args, "mmaudio.official") == Path("/m") and getattr(args, "bs_roformer.upstream") == Path(
        "/u"
    )
    assert getattr(args, "mmaudio.full") is False and args.compare
    with pytest.raises(SystemExit):
        parser.parse_args(["mmaudio"])  # the official checkout is required


@pytest.mark.parametrize("test_file", sorted(CITED))
def test_each_test_file_names_the_commit_of_its_goldens(dispatcher, test_file):
    family, constant = CITED[test_file]
    commit = getattr(dispatcher.families()[family], constant)
    assert re.fullmatch(r"[0-9a-f]{40}", commit)
    docstring = (ROOT / "tests" / test_file).read_text(encoding="utf-8").split('"""')[1]
    assert commit in docstring and "tools/make_goldens.py" in docstring


def test_production_code_does_not_import_the_tools():
    pattern = re.compile(r"^\s*(from|import)\s+(goldens|tools)\b", re.MULTILINE)
    offenders = [p for p in (ROOT / "src").rglob("*.py") if pattern.search(p.read_text(encoding="utf-8"))]
    assert offenders == []
