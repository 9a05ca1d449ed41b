"""Rebuild Tables 1-3 and the comparison with the paper from results/runs/*.json (same as `fastdrop tables`)."""
import sys

from fastdrop.report import tables_main

if __name__ == "__main__":
    sys.exit(tables_main(sys.argv[1:]))
