"""Command line: `fastdrop run [hydra overrides]` (train one run, or a sweep with -m), `fastdrop tables`
(rebuild Tables 1-3 from result rows), `fastdrop figures` and `fastdrop bench` (three strategies side by
side). `run` is a Hydra app, so --help, --cfg job, -m and Hydra's own error messages work as usual."""
from __future__ import annotations

import logging
import sys
from pathlib import Path

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

USAGE = """usage: fastdrop {run,tables,figures,bench} [args]

  run      train one configuration (Hydra overrides, e.g. model=resnet18 strategy=dropping; -m for sweeps)
  tables   rebuild the paper's Tables 1-3 from results/runs/*.json  (--results DIR --out DIR)
  figures  draw Figs. 1/3/5/6 from result rows                         (--results DIR --out DIR)
  bench    run sgd, freezing and dropping back to back and compare     (Hydra overrides)
"""


def _hydra_app(task):
    """Wrap `task(cfg, run_dir, experiment)` as a Hydra app over conf/."""
    import hydra
    from hydra.core.hydra_config import HydraConfig

    from .config import register_configs

    register_configs()

    @hydra.main(version_base=None, config_path=str(CONF_DIR), config_name="config")
    def app(cfg):
        hc = HydraConfig.get()
        return task(cfg, hc.runtime.output_dir, hc.runtime.choices.get("experiment"), hc.mode.name == "MULTIRUN")

    return app


def run_task(cfg, run_dir, experiment, multirun):
    from . import distributed
    from .trainer import Trainer
    from .validate import USER_ERRORS

    log = logging.getLogger("fastdrop")
    try:
        trainer = Trainer(cfg, run_dir, experiment=experiment)
        row = trainer.fit()
    except USER_ERRORS as e:
        print(f"fastdrop: error: {e}", file=sys.stderr)
        if multirun:
            return None
        sys.exit(2)
    finally:
        distributed.shutdown()
    if trainer.row_path is None:  # a rank other than 0 under torchrun: rank 0 reports
        return row
    a = f"{row['A']:.2f}%" if row["A"] is not None else "n/a"
    msg = (f"fastdrop: {row['status']}: {row['model']} {row['data']} {row['strategy']} seed {row['seed']}: "
           f"A={a} T={row['T_min']:.2f} min -> {trainer.row_path}")
    print(msg, flush=True)
    log.debug(msg)
    if row["status"] != "completed":
        print(f"fastdrop: {row['status_reason']}", file=sys.stderr)
        if not multirun:
            sys.exit(3)
    return row


def _torchrun_overrides(args: list[str]) -> list[str]:
    """Under torchrun every rank runs this CLI. Give all ranks rank 0's run directory (Hydra's default
    name holds a timestamp that may differ between ranks), and let only rank 0 write .hydra/ and the
    main log (rank r logs to <job>.rank<r>.log)."""
    from . import distributed

    if distributed.env_world_size() <= 1:
        return args
    if any(a in ("-m", "--multirun") for a in args):
        raise ValueError("a sweep (-m) under torchrun is not supported: launch one torchrun per run "
                         "(see README, Scaling out)")
    last = {a.split("=", 1)[0]: a.split("=", 1)[1] for a in args if "=" in a}
    world = distributed.init(last.get("device", "auto"), last.get("dist.backend", "auto"),
                             float(last.get("dist.timeout_min", 30.0)))
    out = list(args)
    if "hydra.run.dir" not in last:
        import re
        from datetime import datetime

        from omegaconf import OmegaConf

        pattern = str(OmegaConf.to_container(OmegaConf.load(CONF_DIR / "config.yaml"))["hydra"]["run"]["dir"])
        now = distributed.gather(world, datetime.now())[0]
        out.append("hydra.run.dir=" + re.sub(r"\$\{now:([^}]*)\}", lambda m: now.strftime(m.group(1)), pattern))
    if not world.is_main:
        out += ["hydra.output_subdir=null",
                f"hydra.job_logging.handlers.file.filename=${{hydra.runtime.output_dir}}/${{hydra.job.name}}.rank{world.rank}.log"]
    return out


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if argv else 2
    cmd, rest = argv[0], argv[1:]
    if cmd == "run":
        try:
            rest = _torchrun_overrides(rest)
        except ValueError as e:
            print(f"fastdrop: error: {e}", file=sys.stderr)
            return 2
        sys.argv = [f"{Path(sys.argv[0]).name} run"] + rest
        _hydra_app(run_task)()
        return 0
    if cmd == "bench":
        from .bench import bench_task

        sys.argv = [f"{Path(sys.argv[0]).name} bench"] + rest
        _hydra_app(bench_task)()
        return 0
    if cmd == "tables":
        from .report import tables_main

        return tables_main(rest)
    if cmd == "figures":
        from .report import figures_main

        return figures_main(rest)
    print(f"fastdrop: unknown command {cmd!r}\n\n{USAGE}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
