"""Process and port helpers of the local stand-ins' launchers (the devstack, the local Airflow UI): is a
recorded process still the one started, its descendants and process groups, free ports, a log's tail (Linux
``/proc``); and what every stand-in server's own process shares: its ``--host``/``--port`` command line and
stopping on SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import threading
from pathlib import Path

HOST = "127.0.0.1"


def server_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The command line of a stand-in server: ``--host`` (default 127.0.0.1) and ``--port``, then its own."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--host", default=HOST, help=f"address to bind (default {HOST})")
    parser.add_argument("--port", type=int, required=True, help="port to bind (0 picks a free port)")
    return parser


def stop_signalled() -> threading.Event:
    """An event set on SIGTERM or SIGINT (installs the handlers: call it from the main thread)."""
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def free_port(host: str = HOST, preferred: int | None = None) -> int:
    """Return a free TCP port on ``host``, ``preferred`` if it is free.

    :param host: address to bind.
    :param preferred: port to try first (e.g. the one used before a restart).
    """
    if preferred:
        with contextlib.suppress(OSError), socket.socket() as sock:
            # like the servers themselves: a port whose old connections linger in TIME_WAIT is free
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, preferred))
            return preferred
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, exited but not reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        with contextlib.suppress(OSError, IndexError):
            # a zombie has exited; only its parent has not reaped it yet
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def start_ticks(pid: int) -> int | None:
    """Start time of a process in clock ticks since boot (Linux), ``None`` when unknown."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def descendants(pid: int) -> list[int]:
    """All live descendants of ``pid`` (Linux /proc; empty elsewhere)."""
    children: dict[int, list[int]] = {}
    proc = Path("/proc")
    if not proc.is_dir():
        return []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    out: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def pgid(pid: int) -> int | None:
    """The process group of ``pid``, ``None`` when it is gone."""
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def signal_group(pgid: int, signum: int) -> None:
    """Send ``signum`` to a process group (nothing when it is gone)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def group_alive(pgid: int) -> bool:
    """Whether any process of group ``pgid`` runs."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def port_free(port: int, host: str = HOST) -> bool:
    """Whether ``port`` on ``host`` can be bound now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def tail(path: Path, lines: int = 40) -> str:
    """Return the last ``lines`` lines of a text file ('' when it does not exist).

    :param path: the file.
    :param lines: how many lines.
    """
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 64_000))
            data = fh.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])
