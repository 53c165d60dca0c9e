"""``python -m infra``: development commands that need this checkout (the emulator binary, the template), not
the image. ``invoke EVENT.json [--repeat N]`` runs the image's ENTRYPOINT + CMD under AWS's Lambda Runtime
Interface Emulator (``invoke_cli.py``); the service's own commands are ``python -m handler``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m infra", description="Development commands for this checkout (the service's: python -m handler)."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    invoke = commands.add_parser(
        "invoke", help="run the image's ENTRYPOINT+CMD under the Lambda Runtime Interface Emulator with an event"
    )
    invoke.add_argument("event", type=Path, metavar="EVENT.json")
    invoke.add_argument("--repeat", type=int, default=1, help="invoke N times on one warm runtime")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from infra.invoke_cli import invoke_cli

    return invoke_cli(args.event, repeat=args.repeat)


if __name__ == "__main__":
    sys.exit(main())
