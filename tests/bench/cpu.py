"""CPU time of process trees from /proc, to tell where a run's cycles went (server workers, PostgreSQL, wrk)."""

from __future__ import annotations

import os
import resource
from collections import defaultdict
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds) of a live process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    # After the command: state ppid ... utime (14th field overall, 12th here) stime (13th here).
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds used so far by `root` and its live descendants."""
    children: defaultdict[int, list[int]] = defaultdict(list)
    cpu: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            found = _stat(int(entry))
            if found is not None:
                children[found[0]].append(int(entry))
                cpu[int(entry)] = found[1]
    total, stack = 0.0, [root]
    while stack:
        pid = stack.pop()
        total += cpu.get(pid, 0.0)
        stack.extend(children.get(pid, ()))
    return total


def children_cpu_seconds() -> float:
    """CPU seconds of this process's finished (waited-for) children, e.g. wrk."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (user, nice, system, irq, softirq), from /proc/stat."""
    user, nice, system, _idle, _iowait, irq, softirq = (
        int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:8]
    )
    return (user + nice + system + irq + softirq) / _TICKS


def postmaster_pid(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return None


class CpuMeter:
    """CPU cores used by the server, PostgreSQL and wrk between start() and stop(), and by everything else on the
    machine ("other": a concurrent test run, say, which would disturb the measurement)."""

    def __init__(self, server_pid: int, postgres_pid: int | None) -> None:
        self.server_pid = server_pid
        self.postgres_pid = postgres_pid
        self._start: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def _sample(self) -> tuple[float, float, float, float]:
        postgres = tree_cpu_seconds(self.postgres_pid) if self.postgres_pid else 0.0
        return tree_cpu_seconds(self.server_pid), postgres, children_cpu_seconds(), machine_busy_seconds()

    def start(self) -> None:
        self._start = self._sample()

    def stop(self, seconds: float) -> dict[str, float]:
        end = self._sample()
        names = ("server", "postgres", "wrk", "machine")
        used = {name: (b - a) / seconds for name, a, b in zip(names, self._start, end, strict=True)}
        machine = used.pop("machine")
        used["other"] = max(0.0, machine - sum(used.values()))
        return used
