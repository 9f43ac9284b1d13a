"""Describe the machine a benchmark ran on, for the committed results."""

from __future__ import annotations

import os
import platform
import subprocess


def _memory_gib() -> float | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemTotal:"):
                    return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        return None
    return None


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _git_commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def describe_machine() -> dict:
    cores = os.cpu_count()
    memory = _memory_gib()
    python = platform.python_version()
    cpu = _cpu_model()
    return {
        "cores": cores,
        "memory_gib": memory,
        "cpu": cpu,
        "python": python,
        "platform": platform.platform(),
        "git_commit": _git_commit(),
        "summary": f"{cores} cores ({cpu}), {memory} GiB RAM, Python {python}, {platform.system()}",
    }
