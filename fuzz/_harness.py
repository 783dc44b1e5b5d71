"""What every ``fuzz/fuzz_<target>.py`` script shares: run one target of
:mod:`l2session.testing.fuzz_targets` under atheris (libFuzzer).

The scripts import nothing of l2session at module level, and this module
imports atheris only in :func:`main`: so a script is importable without
atheris (tests/fuzz/test_fuzz_scripts.py runs each ``TestOneInput`` on its
seeds in the normal suite), and under atheris l2session is imported inside
``atheris.instrument_imports`` so that libFuzzer sees its branches.
"""

from __future__ import annotations

import functools
import shlex
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from l2session.testing.fuzz_targets import FuzzTarget

#: What to instrument: l2session only (the standard library and
#: ``cryptography`` are not ours to fuzz, and instrumenting them is slow).
INSTRUMENTED = ("l2session",)


@functools.cache
def target(name: str) -> FuzzTarget:
    """The registry target ``name`` (imported on first use)."""
    from l2session.testing.fuzz_targets import target as lookup

    return lookup(name)


def run(name: str, data: bytes) -> None:
    """One input: the body of every script's ``TestOneInput``."""
    target(name).run(data)


def _with_default(argv: list[str], flag: str, value: str) -> list[str]:
    """``argv`` with ``-flag=value`` added unless the caller gave the flag."""
    if any(arg.startswith(f"-{flag}=") for arg in argv[1:]):
        return argv
    return [*argv, f"-{flag}={value}"]


def self_command(script: str) -> str:
    """How libFuzzer runs this script again: ``-jobs``, ``-merge=1`` and
    ``-minimize_crash=1`` start ``argv[0]`` through the shell, and a
    ``.py`` file is not a command, so it is given with its interpreter."""
    return f"{shlex.quote(sys.executable)} {shlex.quote(script)}"


def main(name: str, test_one_input: Callable[[bytes], None]) -> None:
    """Fuzz target ``name`` with libFuzzer's command line (``sys.argv``)."""
    try:
        import atheris
    except ImportError:
        sys.exit("atheris is not installed: pip install -e '.[fuzz]' (see fuzz/README.md)")
    with atheris.instrument_imports(include=list(INSTRUMENTED)):
        import l2session.testing.fuzz_targets  # noqa: F401
    fuzz_target = target(name)
    # Build the target's keys and handshakes before the clock starts, and
    # refuse to fuzz a target whose own seeds fail.
    for seed in fuzz_target.seeds():
        fuzz_target.run(seed)
    argv = _with_default(list(sys.argv), "max_len", str(fuzz_target.max_len))
    argv[0] = self_command(argv[0])
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
