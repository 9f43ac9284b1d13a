"""Entry script for processing jobs: puts the repository on ``sys.path`` and runs the analyzer."""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    from devstack.monitor_analyzer.__main__ import main

    sys.exit(main())
