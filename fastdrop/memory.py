"""How much host memory is free: what the feature cache's `auto` backend and the streaming data path
(data.memory_budget_gb=null) size themselves against."""
from __future__ import annotations

import os


def host_available_bytes() -> int:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
