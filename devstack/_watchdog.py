"""Stop a devstack when the process that started it dies (used by the pytest fixture).

``python -m devstack._watchdog --parent PID --state-dir DIR``: polls ``PID`` every second; when it is
gone, runs ``Stack(DIR).down()``. It exits on its own once the stack was stopped normally (no service
left in ``stack.json``), so a clean teardown leaves nothing behind either.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _stack_running(state_dir: Path) -> bool:
    try:
        return bool(json.loads((state_dir / "stack.json").read_text()).get("services"))
    except (OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    """Watch the parent and stop the stack when it dies.

    :param argv: command-line arguments.
    :return: the exit code.
    """
    parser = argparse.ArgumentParser(prog="python -m devstack._watchdog")
    parser.add_argument("--parent", type=int, required=True)
    parser.add_argument("--state-dir", type=Path, required=True)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    from devstack.processes import pid_alive
    from devstack.stack import Stack

    seen_running = False
    give_up = time.monotonic() + 900  # the stack never came up: nothing to watch
    while True:
        if not pid_alive(args.parent):
            stopped = Stack(args.state_dir, seed=None).down()
            print(f"parent {args.parent} is gone; stopped {', '.join(stopped) or 'nothing'}", flush=True)
            return 0
        if _stack_running(args.state_dir):
            seen_running = True
        elif seen_running or time.monotonic() > give_up:
            return 0  # stopped normally
        time.sleep(args.interval)


if __name__ == "__main__":
    sys.exit(main())
