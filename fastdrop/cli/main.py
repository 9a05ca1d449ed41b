"""Command line: `fastdrop run [hydra overrides]` (train one run, or a sweep with -m), `fastdrop tables`
(rebuild Tables 1-3 from result rows), `fastdrop figures` and `fastdrop bench` (three strategies side by
side). `run` is a Hydra app, so --help, --cfg job, -m and Hydra's own error messages work as usual."""
from __future__ import annotations

import sys

from ..errors import print_error
from .hydra import hydra_main
from .torchrun import torchrun_overrides

USAGE = """usage: fastdrop {run,tables,figures,bench,suite} [args]

  run      train one configuration (Hydra overrides, e.g. model=resnet18 strategy=dropping; -m for sweeps)
  tables   rebuild the paper's Tables 1-3 from results/runs/*.json  (--results DIR --out DIR)
  figures  draw Figs. 1/3/5/6 from result rows                         (--results DIR --out DIR)
  bench    run sgd, freezing and dropping back to back and compare     (Hydra overrides)
  suite    the held-out suite: sgd, its frontier, the paper's rule, ours and the peers on 5 configs
"""


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "run":
        from .train import run_task

        try:
            rest = torchrun_overrides(rest)
        except ValueError as e:
            print_error(str(e))
            return 2
        return hydra_main(run_task, "run", rest)
    if cmd == "bench":
        from ..bench.run import bench_task

        return hydra_main(bench_task, "bench", rest)
    if cmd == "suite":
        from ..bench.suite import main as suite_main

        return suite_main(rest)
    if cmd == "tables":
        from ..report import tables_main

        return tables_main(rest)
    if cmd == "figures":
        from ..report import figures_main

        return figures_main(rest)
    print(f"fastdrop: unknown command {cmd!r}\n\n{USAGE}", file=sys.stderr)
    return 2

