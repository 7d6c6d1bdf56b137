"""CPU threads for llama.cpp on a machine it shares.

llama.cpp splits each step of a token over its threads and waits for the
slowest, so one thread more than the cores that are free stalls every step
(on 2 cores with one other busy process: 45 tok/s with 2 threads, 83 with 1).
By default the SLM therefore starts on the physical performance cores it may
run on (:func:`performance_cores`) and :class:`ThreadShare` keeps measuring,
while it decodes, how many cores other processes keep busy, and leaves those
to them. Only the SLM's own decoding is measured: a cloud call (whose engine
may run on this machine) or a new prompt starts a new window. llama.cpp gives
the same logits whatever the thread count, so a seeded answer stays the same
when the count changes. Its threads do not spin while the relay waits on a
cloud (measured: 10 ms of CPU in a 1 s wait).
"""

from __future__ import annotations

import math
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

__all__ = [
    "WINDOW_S",
    "CpuSample",
    "ThreadShare",
    "cpu_sample",
    "machine_load",
    "performance_cores",
    "usable_cpus",
]

WINDOW_S = 0.5
"""Decoding time over which the other processes' load is measured."""
GAP_S = 2.0
"""A pause between two drawn tokens longer than this starts a new window."""
LEAVE = 0.25
"""A core other processes keep more than this busy is left to them."""

_CPU = Path("/sys/devices/system/cpu")


def performance_cores() -> int:
    """Physical performance cores this process may use (at least 1).

    Hyper-threads of one core count once, efficiency cores of a hybrid CPU do not
    count, and the CPU affinity and a container's CPU quota bound the figure.
    """
    cores = _linux_cores() if sys.platform.startswith("linux") else _other_cores()
    quota = _cgroup_quota()
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def _linux_cores() -> int:
    allowed = os.sched_getaffinity(0)
    performance = _cpu_list(_read(Path("/sys/devices/cpu_core/cpus")))  # Intel hybrid P-cores
    if performance & allowed:
        allowed &= performance
    siblings = {_read(_CPU / f"cpu{cpu}/topology/core_cpus_list") or str(cpu) for cpu in allowed}
    return len(siblings)


def _other_cores() -> int:
    if sys.platform == "darwin":
        perf = _sysctl_int("hw.perflevel0.physicalcpu") or _sysctl_int("hw.physicalcpu")
        if perf:
            return perf
    import psutil

    return psutil.cpu_count(logical=False) or os.cpu_count() or 1


def _sysctl_int(name: str) -> int | None:
    import ctypes
    import ctypes.util

    libc = ctypes.CDLL(ctypes.util.find_library("c"))
    value, size = ctypes.c_int(0), ctypes.c_size_t(ctypes.sizeof(ctypes.c_int))
    if libc.sysctlbyname(name.encode(), ctypes.byref(value), ctypes.byref(size), None, 0):
        return None
    return value.value


def _cgroup_quota() -> float | None:
    """CPUs a cgroup v2 quota allows (``cpu.max``), if one is set."""
    fields = _read(Path("/sys/fs/cgroup/cpu.max")).split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    try:
        return int(fields[0]) / int(fields[1])
    except (ValueError, ZeroDivisionError):
        return None


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _cpu_list(text: str) -> set[int]:
    """CPUs of a kernel list such as ``0-3,8,10-11``."""
    cpus: set[int] = set()
    for part in filter(None, text.split(",")):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


CpuSample = tuple[float, float, float]
"""Seconds: wall clock, busy CPU time of the CPUs we may use, CPU time of this process."""


def machine_load() -> float:
    """Runnable processes on the machine (its one-minute load average; 0 where unknown): the
    first estimate of what others keep busy, before a window of our own decoding is measured."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def usable_cpus() -> list[int]:
    """The logical CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def cpu_sample(cpus: list[int] | None = None) -> CpuSample:
    """The clocks :class:`ThreadShare` compares, from psutil's per-CPU times."""
    import psutil

    per_cpu = psutil.cpu_times(percpu=True)
    busy = 0.0
    for index in cpus if cpus is not None else range(len(per_cpu)):
        if index < len(per_cpu):
            times = per_cpu[index]._asdict()
            for waiting in ("idle", "iowait", "guest", "guest_nice"):  # guest: within user
                times.pop(waiting, None)
            busy += sum(times.values())
    ours = os.times()
    return time.monotonic(), busy, ours.user + ours.system


class ThreadShare:
    """How many threads to decode with, given what other processes use of the machine.

    ``cores`` is the most threads to use (:func:`performance_cores`), ``cpus``
    the logical CPUs we may run on, ``others`` a first estimate of the CPUs other
    processes keep busy (:func:`machine_load`). :meth:`tick` is called before each token
    the model draws, ``fresh`` when more than that token was evaluated since the
    last one (a cloud's text spliced, a new prompt). Over each :data:`WINDOW_S`
    of decoding with nothing else in between it measures how many of ``cpus``
    other processes kept busy (their busy time less this process's) and leaves
    those cores to them (:data:`LEAVE`). It returns a new thread count when that
    changes, else ``None``.
    """

    def __init__(
        self,
        cores: int,
        cpus: list[int],
        *,
        sample: Callable[[list[int]], CpuSample] = cpu_sample,
        others: float = 0.0,
    ) -> None:
        self.cores = max(1, cores)
        self.cpus = list(cpus) or [0]
        self.others = 0.0
        self.threads = self._fit(others)  # until the first window: ``others`` as estimated
        self._sample = sample
        self._start: CpuSample | None = None
        self._started = self._last_tick = -math.inf

    def tick(self, fresh: bool = False) -> int | None:
        now = time.monotonic()
        if fresh or self._start is None or now - self._last_tick > GAP_S:
            self._start, self._started = self._sample(self.cpus), now  # a new window
        elif now - self._started >= WINDOW_S:
            self._started = now
            self._last_tick = now
            return self.measured(self._start, self._sample(self.cpus))
        self._last_tick = now
        return None

    def measured(self, start: CpuSample, end: CpuSample) -> int | None:
        """Take one window into account; the new thread count, if it changed."""
        self._start = end
        wall = end[0] - start[0]
        if wall <= 0:
            return None
        busy, ours = end[1] - start[1], end[2] - start[2]
        before = self.threads
        self.threads = self._fit((busy - ours) / wall)
        return None if self.threads == before else self.threads

    def _fit(self, others: float) -> int:
        """Threads when other processes keep ``others`` of our CPUs busy."""
        self.others = min(float(len(self.cpus)), max(0.0, others))
        taken = self.others * self.cores / len(self.cpus)  # in physical cores
        return min(self.cores, max(1, self.cores - math.ceil(taken - LEAVE)))
