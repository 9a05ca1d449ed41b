"""python scripts/bench.py [hydra overrides]  ==  fastdrop bench [hydra overrides]"""
import sys

from fastdrop.cli import main

sys.exit(main(["bench", *sys.argv[1:]]))
