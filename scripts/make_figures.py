"""Draw Figs. 1, 3, 5 and 6 from results/runs/*.json (same as `fastdrop figures`)."""
import sys

from fastdrop.report import figures_main

if __name__ == "__main__":
    sys.exit(figures_main(sys.argv[1:]))
