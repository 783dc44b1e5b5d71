"""The atheris scripts in ``fuzz/`` cannot rot: each is imported here
without atheris and its ``TestOneInput`` run on its target's seeds.

Also: one script per registry target and no stray script, the corpus
generator writes what the registry holds, and a script run without atheris
says how to install it instead of failing obscurely.
"""

from __future__ import annotations

import importlib.util
import shlex
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from l2session.testing.fuzz_targets import BY_NAME, TARGETS, FuzzTarget

FUZZ_DIR = Path(__file__).resolve().parents[2] / "fuzz"


@pytest.fixture(autouse=True)
def fuzz_on_path(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The scripts import ``_harness`` from their own directory, as they
    do when run as ``python fuzz/fuzz_x.py``."""
    monkeypatch.syspath_prepend(str(FUZZ_DIR))
    yield
    sys.modules.pop("_harness", None)


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"fuzz_script_{path.stem}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_one_script_per_target_and_no_stray_script() -> None:
    scripts = {path.stem.removeprefix("fuzz_") for path in FUZZ_DIR.glob("fuzz_*.py")}
    assert scripts == set(BY_NAME)


@pytest.mark.parametrize("fuzz_target", TARGETS, ids=lambda t: t.name)
def test_script_runs_its_target_without_atheris(
    fuzz_target: FuzzTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "atheris", None)  # importing it would fail
    script = load(FUZZ_DIR / f"fuzz_{fuzz_target.name}.py")
    assert fuzz_target.name == script.TARGET
    for seed in fuzz_target.seeds():
        script.TestOneInput(seed)
    script.TestOneInput(b"")


def test_script_run_without_atheris_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "atheris", None)
    harness = load(FUZZ_DIR / "_harness.py")
    with pytest.raises(SystemExit, match=r"pip install -e '\.\[fuzz\]'"):
        harness.main("wire_packets", lambda data: None)


def test_harness_adds_max_len_unless_given() -> None:
    harness = load(FUZZ_DIR / "_harness.py")
    assert harness._with_default(["x", "corpus"], "max_len", "9") == ["x", "corpus", "-max_len=9"]
    given = ["x", "-max_len=5", "corpus"]
    assert harness._with_default(given, "max_len", "9") == given


def test_make_corpus_writes_every_seed_and_dictionary(tmp_path: Path) -> None:
    make_corpus = load(FUZZ_DIR / "make_corpus.py")
    assert make_corpus.main(["--out", str(tmp_path), "wire_packets", "did"]) == 0
    for name in ("wire_packets", "did"):
        written = {path.read_bytes() for path in (tmp_path / name).iterdir()}
        assert written == set(BY_NAME[name].seeds())
    assert '"did:"' in (tmp_path / "did.dict").read_text().splitlines()
    assert not (tmp_path / "wire_packets.dict").exists()


def test_dictionary_escapes_what_libfuzzer_cannot_read_raw() -> None:
    make_corpus = load(FUZZ_DIR / "make_corpus.py")
    assert make_corpus.dictionary([b'a"b\\c\x00\xff']) == '"a\\x22b\\x5cc\\x00\\xff"\n'


def test_make_corpus_refuses_an_unknown_target(tmp_path: Path) -> None:
    make_corpus = load(FUZZ_DIR / "make_corpus.py")
    with pytest.raises(SystemExit):
        make_corpus.main(["--out", str(tmp_path), "no_such_target"])


def test_libfuzzer_restarts_the_script_with_its_interpreter() -> None:
    """-jobs, -merge=1 and -minimize_crash=1 run argv[0] through the shell."""
    harness = load(FUZZ_DIR / "_harness.py")
    command = harness.self_command("fuzz/fuzz_x y.py")
    assert command == f"{shlex.quote(sys.executable)} 'fuzz/fuzz_x y.py'"
