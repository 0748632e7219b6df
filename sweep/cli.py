"""The ``sweep-results`` command: print a sweep's ranked summary; optionally write its tables, plot, refit.

    sweep-results outputs/multirun/<date>/<time>                  # the ranked summary
    sweep-results <sweep dir> --metric val_loss --top 5
    sweep-results <sweep dir a> <sweep dir b>                     # several sweeps in one table
    sweep-results <sweep dir> --plot                              # PNG figures next to the tables
    sweep-results <sweep dir> --write                             # (re)write results.csv/.parquet, summary.csv
    sweep-results <sweep dir> --refit                             # retrain rank 1 on train+val, score on test
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path

from sweep.results import SkippedRecordWarning, format_summary, load, summarize, write_tables


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="sweep-results", description="Rank the configs of one or more sweeps from their records.")
    p.add_argument("paths", nargs="+", type=Path, help="sweep dirs (outputs/multirun/<date>/<time>), run dirs or result.json files")
    p.add_argument("--metric", help="metric to rank by (default: the runs' task.metric)")
    p.add_argument("--top", type=int, default=10, help="rows of the summary to print (0: all; default 10)")
    p.add_argument("--aggregate-seeds", action="store_true", help="average over seed as well as folds")
    p.add_argument("--write", action="store_true", help="write results.csv, results.parquet, summary.csv into each sweep dir")
    p.add_argument("--plot", action="store_true", help="write PNG figures into --out")
    p.add_argument("--out", type=Path, help="where --plot writes (default: the sweep dir, or . for several paths)")
    p.add_argument("--refit", action="store_true", help="retrain the rank-1 config on train+validation rows, score it on the test split")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run ``sweep-results``; exit 0, 1 (a refit failed) or 2 (nothing to rank)."""
    args = parser().parse_args(argv)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", SkippedRecordWarning)
        runs = load(*args.paths)
    for warning in caught:
        print(f"sweep-results: {warning.message}", file=sys.stderr)
    if runs.empty:
        print(f"sweep-results: no run records under {', '.join(map(str, args.paths))}", file=sys.stderr)
        return 2
    try:
        summary = summarize(runs, args.metric, args.aggregate_seeds)
    except ValueError as error:
        print(f"sweep-results: {error}", file=sys.stderr)
        return 2
    print(format_summary(summary, args.top or None))
    if args.write:
        for path in (p for p in args.paths if p.is_dir()):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", SkippedRecordWarning)
                write_tables(path, args.metric, runs=runs if len(args.paths) == 1 else None)
            print(f"wrote tables into {path}")
    if args.plot:
        from sweep.plots import plot_sweep

        out = args.out or (args.paths[0] if len(args.paths) == 1 and args.paths[0].is_dir() else Path("."))
        for path in plot_sweep(runs, summary, out):
            print(f"wrote {path}")
    if args.refit:
        return _refit(args)
    return 0


def _refit(args: argparse.Namespace) -> int:
    if len(args.paths) != 1:
        print("sweep-results: --refit takes one sweep dir", file=sys.stderr)
        return 2
    import sweep.backend  # noqa: F401  (quiet TensorFlow before a task imports it)
    from sweep.refit import REFIT_DIR, refit

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkippedRecordWarning)
        try:
            record = refit(args.paths[0], args.metric, args.aggregate_seeds)
        except ValueError as error:
            print(f"sweep-results: {error}", file=sys.stderr)
            return 2
    shown = {k: v for k, v in record.items() if k in ("status", "error", "refit_of", "n_train_rows", "n_test_rows") or k.startswith("test_")}
    print(f"\nRefit of rank 1 ({record['selected_by']}) -> {args.paths[0] / REFIT_DIR / 'result.json'}")
    print(json.dumps(shown, indent=1))
    return 0 if record["status"] == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
