"""The ``l2session`` command line (also ``python -m l2session``).

Client commands (``status``, ``id``, ``sessions``, ``send``, ``listen``,
``peer``, ``session``: cli/control_commands.py) talk to a running node and
import nothing of the node stack, so that they start fast; only for them
this module builds a parser of just those commands.  Everything else --
``init``, ``node``, ``config`` (cli/commands.py), ``audit``, ``policy``,
``trust`` (the Membrane, cli/membrane.py), ``demo`` (three nodes on
loopback, cli/netdemo.py; ``demo --steps``: one handshake step by step,
cli/demo.py) and ``bench`` -- is registered on demand.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from l2session import __version__
from l2session.cli import control_commands
from l2session.cli.client import fail
from l2session.errors import L2SessionError


def build_parser(*, full: bool = True) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="l2session",
        description="Sovereign, post-quantum, resilient peer-to-peer sessions.",
    )
    parser.add_argument("--version", action="version", version=f"l2session {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="log more (-vv: debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    control_commands.register(sub)
    if not full:
        return parser
    from l2session.cli import commands, membrane

    commands.register(sub)
    membrane.register(sub)
    p = sub.add_parser("demo", help="three nodes on loopback: handshake, rotation, faults")
    p.add_argument(
        "--steps",
        action="store_true",
        help="instead, one PQXDH handshake and ratchet, step by step",
    )
    p.set_defaults(handler=_demo)
    p = sub.add_parser("bench", help="session establishment, throughput and RTT on loopback")
    p.add_argument("--messages", type=int, default=5000)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=_bench)
    return parser


def _demo(args: argparse.Namespace, out: object) -> int:
    if args.steps:
        from l2session.cli import demo

        return demo.run()
    from l2session.cli import netdemo

    return netdemo.main()


def _bench(args: argparse.Namespace, out: object) -> int:
    from l2session.cli import bench

    return bench.main(messages=args.messages, as_json=args.json)


def _command(argv: Sequence[str]) -> str | None:
    """The command word: the first argument that is not an option."""
    return next((a for a in argv if not a.startswith("-")), None)


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(full=_command(args_list) not in control_commands.COMMANDS)
    args, extra = parser.parse_known_args(args_list)
    if (
        extra
        and getattr(args, "command", None) == "send"
        and args.message is None
        and (extra[0] == "-" or not extra[0].startswith("-"))
    ):
        # ``send DID --to ADDR "text"``: argparse fills an optional
        # positional only from the first run of positionals.
        args.message, extra = extra[0], extra[1:]
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if args.verbose:
        import logging  # not for client commands by default: every import costs start-up

        level = logging.DEBUG if args.verbose > 1 else logging.INFO
        logging.basicConfig(level=level, format="%(asctime)s %(name)s %(message)s")
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(handler(args, sys.stdout))
    except L2SessionError as error:
        return fail(str(error))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 1  # the reader went away (``| head``): nothing left to say
    except OSError as error:
        # A file or device the user named: one line, not a traceback.
        where = f"{error.filename}: " if error.filename else ""
        return fail(f"{where}{error.strerror or error}")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
