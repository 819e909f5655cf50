"""`tinyvid` console entry point: each area registers its own sub-commands."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from tinyvid.course import commands as course_commands
    from tinyvid import bench, caption, sample
    from tinyvid.serve import cli as serve_cli

    parser = argparse.ArgumentParser(prog="tinyvid", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    course_commands.register(sub)
    sample.register(sub)
    bench.register(sub)
    caption.register(sub)
    serve_cli.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
