"""`python -m fastdrop.cli` (the tests run the CLI this way)."""
import sys

from .main import main

sys.exit(main())
