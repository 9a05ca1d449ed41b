"""`fastdrop run` under torchrun (every rank runs the CLI): one run directory for all ranks."""
from __future__ import annotations

from ..config import CONF_DIR
from ..run import distributed


def torchrun_overrides(args: list[str]) -> list[str]:
    """Under torchrun every rank runs this CLI. Give all ranks rank 0's run directory (Hydra's default
    name holds a timestamp that may differ between ranks), and let only rank 0 write .hydra/ and the
    main log (rank r logs to <job>.rank<r>.log)."""
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
        now = world.gather(datetime.now())[0]
        out.append("hydra.run.dir=" + re.sub(r"\$\{now:([^}]*)\}", lambda m: now.strftime(m.group(1)), pattern))
    if not world.is_main:
        out += ["hydra.output_subdir=null",
                f"hydra.job_logging.handlers.file.filename=${{hydra.runtime.output_dir}}/${{hydra.job.name}}.rank{world.rank}.log"]
    return out
