"""`fastdrop tables` and `fastdrop figures` (also scripts/make_tables.py, scripts/make_figures.py)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import print_error
from ..files import RUNS, write_error
from .figures import write_figures
from .render import write_tables


def _written(prog: str, out: Path, write):
    """`write()`, or one error line and exit code 4 when a file under `out` cannot be written (no space
    or permission)."""
    try:
        return write()
    except OSError as e:
        err = write_error(e, e.filename or out)
        if err is None:
            raise
        print_error(str(err), prog)
        raise SystemExit(4) from None


def _print_warnings(prog: str, warnings: list[str]) -> None:
    for w in warnings:
        print(f"{prog}: warning: {w}", file=sys.stderr)


def tables_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="fastdrop tables", description="Rebuild Tables 1-3 and the comparison with "
                                 "the paper from <results>/runs/*.json (markdown, CSV, LaTeX).")
    ap.add_argument("--results", default="results", help="results directory holding runs/ (default: results)")
    ap.add_argument("--out", default=None, help="output directory (default: <results>/tables)")
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else Path(args.results) / "tables"
    if not (Path(args.results) / RUNS).is_dir():
        print_error(f"{Path(args.results) / RUNS} does not exist (pass --results DIR)", "fastdrop tables")
        return 1
    written, warnings = _written("fastdrop tables", out, lambda: write_tables(args.results, out))
    _print_warnings("fastdrop tables", warnings)
    n_tables = sum(1 for p in written if p.suffix == ".md")
    print(f"fastdrop tables: wrote {n_tables} tables (.md, .csv, .tex) to {out}"
          + (f"; {len(warnings)} warning(s) in {out / 'warnings.txt'}" if warnings else ""))
    return 0


def figures_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser(prog="fastdrop figures", description="Draw Figs. 1, 3, 5 and 6 (PNG) from "
                                 "<results>/runs/*.json, one set per (model, data, width, epochs, seed, device).")
    ap.add_argument("--results", default="results", help="results directory holding runs/ (default: results)")
    ap.add_argument("--out", default=None, help="output directory (default: <results>/figures)")
    ap.add_argument("--run-id", action="append", default=None, metavar="RUN_ID",
                    help="draw only the groups of these runs (repeatable); Figs. 1/3 then use the named run")
    args = ap.parse_args(argv)
    out = Path(args.out) if args.out else Path(args.results) / "figures"
    written, warnings = _written("fastdrop figures", out, lambda: write_figures(args.results, out, args.run_id))
    _print_warnings("fastdrop figures", warnings)
    if not written:
        print(f"fastdrop figures: nothing to draw from {Path(args.results) / RUNS}", file=sys.stderr)
        return 1
    print(f"fastdrop figures: wrote {len(written)} figures to {out}"
          + (f"; {len(warnings)} warning(s) in {out / 'warnings.txt'}" if warnings else ""))
    return 0
