"""``python -m edge_hub.simboard``: the same as ``edge-hub sim-board``."""

import sys

from edge_hub.simboard.cli import run

raise SystemExit(run(sys.argv[1:]))
