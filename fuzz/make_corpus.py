"""Write the seed corpus of each fuzz target: ``fuzz/corpus/<target>/``.

Usage::

    python fuzz/make_corpus.py                 # every target
    python fuzz/make_corpus.py wire_packets did --out /tmp/corpus

Each seed is a valid input built with the project's own encoders
(``FuzzTarget.seeds`` in ``l2session.testing.fuzz_targets``), written as
``seed-<sha1>`` so that rerunning adds nothing twice and libFuzzer's own
files (also named by SHA-1) sit next to them.  A target with keywords also
gets ``<target>.dict`` for libFuzzer's ``-dict=``.  Corpora are not
committed (``.gitignore``): they are rebuilt from the registry.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

from l2session.testing.fuzz_targets import BY_NAME, TARGETS, FuzzTarget

DEFAULT_OUT = Path(__file__).resolve().parent / "corpus"


def dictionary(tokens: Sequence[bytes]) -> str:
    """libFuzzer dictionary text: one ``"..."`` entry per token, every byte
    outside printable ASCII (and ``"``, ``\\``) as ``\\xNN``."""
    lines = []
    for token in tokens:
        escaped = "".join(
            chr(b) if 0x20 <= b < 0x7F and b not in b'"\\' else f"\\x{b:02x}" for b in token
        )
        lines.append(f'"{escaped}"')
    return "\n".join(lines) + "\n"


def write_corpus(fuzz_target: FuzzTarget, out: Path) -> list[Path]:
    """Write ``fuzz_target``'s seeds (and dictionary) under ``out``."""
    directory = out / fuzz_target.name
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for seed in fuzz_target.seeds():
        path = directory / f"seed-{hashlib.sha1(seed).hexdigest()}"  # noqa: S324 - a name
        path.write_bytes(seed)
        written.append(path)
    if fuzz_target.tokens:
        (out / f"{fuzz_target.name}.dict").write_text(dictionary(fuzz_target.tokens))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="target names (default: all)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="corpus root")
    args = parser.parse_args(argv)
    unknown = [name for name in args.targets if name not in BY_NAME]
    if unknown:
        parser.error(f"unknown targets {unknown}; targets: {', '.join(BY_NAME)}")
    chosen = [BY_NAME[name] for name in args.targets] or list(TARGETS)
    for fuzz_target in chosen:
        written = write_corpus(fuzz_target, args.out)
        print(f"{fuzz_target.name}: {len(written)} seeds in {args.out / fuzz_target.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
