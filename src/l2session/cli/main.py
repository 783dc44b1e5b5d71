"""The ``l2session`` command line.

Today: ``demo`` and ``--version``.  The node commands (``init``, ``node``,
``sessions``, ``send``, ``listen``, ``bench``) arrive with the network issue.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from l2session import __version__
from l2session.cli import demo


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="l2session",
        description="Sovereign, post-quantum, resilient peer-to-peer sessions.",
    )
    parser.add_argument("--version", action="version", version=f"l2session {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.add_parser(
        "demo", help="a PQXDH handshake and a Double Ratchet exchange, step by step"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "demo":
        return demo.run()
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
