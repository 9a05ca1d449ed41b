"""Reading `<results>/runs/*.json` into one DataFrame: every file is checked for the keys and types the
report needs, and unreadable, partial or duplicate rows are skipped with a warning naming the file."""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

import pandas as pd

from ..files import RUNS
from ..results import row as row_schema
from ..results.row import REQUIRED  # noqa: F401  (re-exported)
from .common import _finite, strategies

# The columns the report works with; every one is a field of the row schema (fastdrop.results.row.Row).
COLUMNS = ["run_id", "status", "status_reason", "model", "width", "data", "strategy", "policy", "experiment", "tag",
           "seed", "epochs", "epochs_done", "batch_size", "precision", "device", "device_name", "T_min", "A",
           "train_time_s", "cache_time_s", "fwd_macs_full_per_sample", "params_total", "finished_at", "unit_names",
           "model_family", "weights", "history"]


def _problem(row) -> Optional[str]:
    """Why `row` cannot be used, or None: the schema's own check, then what the report needs of it."""
    why = row_schema.problem(row)
    if why:
        return why
    if row["strategy"] not in strategies():
        return f"unknown strategy {row['strategy']!r} (expected one of {', '.join(strategies())})"
    if not all(isinstance(h, dict) for h in row["history"]):
        return "history entries are not JSON objects"
    if row["status"] == "completed":
        for k in ("T_min", "A"):
            if not _finite(row[k]):
                return f"status is completed but {k} is {row[k]!r}"
        done = row.get("epochs_done", len(row["history"]))
        if done != row["epochs"] or len(row["history"]) != row["epochs"]:
            return (f"partial row: status is completed but it has {len(row['history'])} history entries "
                    f"(epochs_done {done}) for {row['epochs']} epochs")
    return None


def load_rows(results_dir) -> tuple[pd.DataFrame, list[str]]:
    """Every usable `<results_dir>/runs/*.json` as one DataFrame row (any status), and the warnings about
    files that were skipped (bad JSON, missing keys, partial rows), each naming the file."""
    runs = Path(results_dir) / RUNS
    warnings: list[str] = []
    records = []
    if not runs.is_dir():
        warnings.append(f"{runs}: no such directory (no runs to report)")
    else:
        seen: dict[str, str] = {}
        for path in sorted(runs.glob("*.json")):
            try:
                row = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, ValueError) as e:
                warnings.append(f"{path}: skipped: not valid JSON ({type(e).__name__}: {e})")
                continue
            why = _problem(row)
            if why:
                warnings.append(f"{path}: skipped: {why}")
                continue
            if row["run_id"] in seen:
                warnings.append(f"{path}: skipped: run_id {row['run_id']} already read from {seen[row['run_id']]}")
                continue
            seen[row["run_id"]] = str(path)
            row = row_schema.load(row)  # an older row: its missing fields at the schema's defaults
            rec = {k: row[k] for k in COLUMNS}
            rec["file"] = str(path)
            rec["device_name"] = row["device_name"] or row["device"]
            rec["width"] = math.nan if row["width"] is None else float(row["width"])  # None: a custom model
            rec["status_reason"] = row["status_reason"] or ""
            rec["finished_at"] = row["finished_at"] or ""
            rec["weights"] = row["weights"] or ""  # from scratch: "" (a group key, so never None/NaN)
            records.append(rec)
    df = pd.DataFrame.from_records(records, columns=COLUMNS + ["file"])
    return df, warnings
