"""Tables 1-3, the comparison with the paper and Figs. 1/3/5/6, rebuilt from the per-run JSON rows alone.

Every run leaves one self-describing row in `<results>/runs/<run_id>.json` (see `results.py`), so the
report is a pure function of those files: no run is ever re-trained or re-measured here, and a table can
be rebuilt at any time, on any machine, from whatever rows exist. Because a time saving is only
meaningful against a baseline measured under the same conditions, ΔT is computed per seed against the
SGD run with the same network, dataset, width, epochs, batch size, precision, device (and device name)
and seed; whatever cannot be paired that way is shown as "–" and explained in `warnings.txt`, never
silently mixed. Unreadable or partial rows are skipped with a warning naming the file, and runs that did
not complete are left out and listed. Text formats are written with pandas + tabulate only (LaTeX through
`tablefmt="latex_booktabs"`, so jinja2 is not needed); the PNG figures use matplotlib's object API on
the Agg canvas, so importing this module never changes the caller's matplotlib backend. Table 3 gives
forward work in MMAC and in MFLOPs (= 2 x MAC); the paper's Table 3, though headed "FLOPs", matches MACs
(the reasoning is in `compute_tables`).
"""
from __future__ import annotations

from .commands import figures_main, tables_main
from .common import (DASH, FIG_KEYS, GROUP_KEYS, baseline, family, fmt_pm, fmt_width, label, mean_std,
                     paper_dataset, paper_flops, paper_numbers, strategies)
from .figures import draw_figures, figure_groups, write_figures
from .render import build_tables, format_tables, to_latex, to_markdown, write_tables
from .read import COLUMNS, REQUIRED, load_rows
from .tables import compute_tables, usable_runs

__all__ = ["DASH", "FIG_KEYS", "GROUP_KEYS", "baseline", "family", "label", "strategies", "fmt_pm",
           "fmt_width", "mean_std", "paper_dataset", "paper_flops", "paper_numbers", "draw_figures",
           "figure_groups", "write_figures", "build_tables", "format_tables", "to_latex", "to_markdown",
           "write_tables", "COLUMNS", "REQUIRED", "load_rows", "compute_tables", "usable_runs", "figures_main",
           "tables_main"]
