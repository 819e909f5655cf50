"""`tinyvid course …`: strip/clean notebooks, run them under a profile, show the last run's table."""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path
from typing import Any

SMOKE_HINT = (
    "smoke proves the code path, not the quality; for the book's reference numbers run "
    "`tinyvid course run --profile cpu` (about 30 min a notebook on a laptop)"
)
BOOK_EXECUTED = Path("book/executed")


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `course` and its sub-commands to the `tinyvid` parser; each sets `args.func`."""
    course = subparsers.add_parser("course", help="notebook tooling: strip, clean, run, status",
                                   description=__doc__)
    sub = course.add_subparsers(dest="course_command", required=True, metavar="SUBCOMMAND")

    strip = sub.add_parser("strip", help="write notebooks/ from solutions/ (exercises blanked, outputs stripped)")
    strip.add_argument("--check", action="store_true",
                       help="write nothing; fail if notebooks/ is not what strip writes or a solution has outputs")
    strip.add_argument("--solutions", default="solutions", metavar="DIR")
    strip.add_argument("--notebooks", default="notebooks", metavar="DIR")
    strip.set_defaults(func=cmd_strip)

    clean = sub.add_parser("clean", help="clear outputs and execution counts in solutions/")
    clean.add_argument("--solutions", default="solutions", metavar="DIR")
    clean.set_defaults(func=cmd_clean)

    run = sub.add_parser("run", help="execute solutions/ with papermill under a profile and tabulate the numbers")
    run.add_argument("--profile", default="smoke", help="smoke (default), cpu, gpu, full or auto")
    run.add_argument("--only", default=None, metavar="00,01", help="comma-separated notebook prefixes")
    run.add_argument("--out", default=None, metavar="DIR", help="executed notebooks + results.json (default runs/PROFILE)")
    run.add_argument("-p", "--parameter", action="append", default=[], metavar="NAME=VALUE",
                     help="extra papermill parameter (a Python literal, else a string); repeatable")
    run.add_argument("--solutions", default="solutions", metavar="DIR")
    run.add_argument("--kernel", default="python3", help="Jupyter kernel name")
    run.add_argument("--timeout", type=float, default=None, metavar="S", help="per-cell time limit in seconds")
    run.add_argument("--no-progress", action="store_true", help="no papermill progress bar")
    run.set_defaults(func=cmd_run)

    status = sub.add_parser("status", help="print the table of an existing results.json")
    status.add_argument("dir", nargs="?", default=None,
                        help="a run folder or results.json (default: the newest under runs/ and book/executed/)")
    status.set_defaults(func=cmd_status)
    return course


def cmd_strip(args: argparse.Namespace) -> int:
    from tinyvid.course.strip import strip_all

    try:
        messages = strip_all(args.solutions, args.notebooks, check=args.check)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for line in messages:
        print(line)
    if args.check:
        if messages:
            print(f"{len(messages)} problem(s): notebooks/ must be exactly what `tinyvid course strip` writes",
                  file=sys.stderr)
            return 1
        print(f"ok: {args.notebooks}/ matches {args.solutions}/")
    elif not messages:
        print(f"{args.notebooks}/ already up to date")
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    from tinyvid.course.strip import clean_all

    messages = clean_all(args.solutions)
    print("\n".join(messages) if messages else f"{args.solutions}/ already clean")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from tinyvid.course.runner import all_ok, format_results_table, run_notebooks

    try:
        parameters = dict(parse_parameter(p) for p in args.parameter)
        results = run_notebooks(
            profile=args.profile,
            only=args.only,
            out_dir=args.out,
            solutions_dir=args.solutions,
            parameters=parameters,
            kernel_name=args.kernel,
            progress=not args.no_progress,
            timeout=args.timeout,
        )
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    print(format_results_table(results))
    out = Path(args.out) if args.out else Path("runs") / results["profile"]
    print(f"\nexecuted notebooks and results.json in {out}/")
    if results["profile"] == "smoke":
        print(SMOKE_HINT)
    if _same_path(out, BOOK_EXECUTED):
        note = "the book will show these executed notebooks and this table"
        if results["profile"] != "cpu":
            note += f" (the book's reference run is `--profile cpu`; these are {results['profile']} numbers)"
        print(note)
    return 0 if all_ok(results) else 1


def cmd_status(args: argparse.Namespace) -> int:
    from tinyvid.course.runner import RESULTS_FILE, all_ok, format_results_table, load_results

    path = Path(args.dir) if args.dir else _newest_results()
    if path is None or not (path / RESULTS_FILE if path.is_dir() else path).exists():
        print(f"error: no {RESULTS_FILE} found{f' in {path}' if path else ''}: run `tinyvid course run` first",
              file=sys.stderr)
        return 2
    results = load_results(path)
    print(format_results_table(results))
    return 0 if all_ok(results) else 1


def parse_parameter(text: str) -> tuple[str, Any]:
    """`steps=200` → ("steps", 200); values are Python literals where they parse, else strings."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip().isidentifier():
        raise ValueError(f"parameter {text!r} is not NAME=VALUE")
    try:
        parsed: Any = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        parsed = value
    return name.strip(), parsed


def _newest_results() -> Path | None:
    candidates = [*Path("runs").glob("*/results.json"), BOOK_EXECUTED / "results.json"]
    existing = [p for p in candidates if p.exists()]
    return max(existing, key=lambda p: p.stat().st_mtime) if existing else None


def _same_path(a: Path, b: Path) -> bool:
    return a.resolve() == b.resolve()
