"""`python -m fastdrop ...` is the `fastdrop` command; torchrun needs it: `torchrun --nproc_per_node=N -m fastdrop run ...`."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
