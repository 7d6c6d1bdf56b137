"""Threads that share the machine: the default counts physical performance cores, follows the
cores other processes keep busy while the SLM decodes, and never changes a seeded answer."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import edge.llama.model as model_module
from edge.llama import LlamaModel
from edge.llama.threads import (
    LEAVE,
    WINDOW_S,
    CpuSample,
    ThreadShare,
    _cpu_list,
    performance_cores,
    usable_cpus,
)
from protocol.sampling import SamplingParams


def test_performance_cores_count_each_physical_core_once() -> None:
    cores = performance_cores()
    assert 1 <= cores <= len(usable_cpus()) <= (os.cpu_count() or 1)
    if sys.platform.startswith("linux"):
        siblings = {
            Path(f"/sys/devices/system/cpu/cpu{cpu}/topology/core_cpus_list").read_text()
            for cpu in usable_cpus()
        }
        assert cores <= len(siblings)


def test_kernel_cpu_lists_are_read() -> None:
    assert _cpu_list("0-3,8,10-11") == {0, 1, 2, 3, 8, 10, 11}
    assert _cpu_list("") == set()


class Clocks:
    """Samples a test sets: wall seconds, busy CPU seconds of the machine, ours."""

    def __init__(self) -> None:
        self.now: CpuSample = (0.0, 0.0, 0.0)

    def advance(self, wall: float, others: float, ours: float) -> CpuSample:
        """``wall`` seconds in which other processes kept ``others`` CPUs busy, we ``ours``."""
        t, busy, mine = self.now
        self.now = (t + wall, busy + (others + ours) * wall, mine + ours * wall)
        return self.now


@pytest.mark.parametrize(
    ("cores", "cpus", "others", "threads"),
    [
        (2, 2, 1.0, 1),  # one busy process on two cores: one thread
        (2, 2, 0.6, 1),  # at two threads a competitor measures less than a core
        (2, 2, LEAVE - 0.05, 2),  # light background work is not worth a thread
        (2, 2, 2.0, 1),  # never fewer than one
        (8, 16, 4.0, 6),  # four busy CPUs of sixteen hyper-threads: two physical cores' worth
        (4, 64, 40.0, 1),  # a container allowed 64 busy CPUs, 24 of them free... but quota 4
    ],
)
def test_other_processes_busy_cores_are_left_to_them(
    cores: int, cpus: int, others: float, threads: int
) -> None:
    clocks = Clocks()
    share = ThreadShare(cores, list(range(cpus)), sample=lambda _: clocks.now)
    start = clocks.now
    changed = share.measured(start, clocks.advance(WINDOW_S, others, ours=float(cores)))
    assert share.threads == threads
    assert changed == (threads if threads != cores else None)
    assert share.others == pytest.approx(others)


def test_the_load_average_is_the_first_estimate() -> None:
    assert ThreadShare(2, [0, 1], others=1.0).threads == 1
    assert ThreadShare(2, [0, 1], others=0.1).threads == 2
    assert ThreadShare(8, list(range(16)), others=0.0).threads == 8


def test_the_thread_comes_back_when_the_other_process_ends() -> None:
    clocks = Clocks()
    share = ThreadShare(2, [0, 1], sample=lambda _: clocks.now)
    assert share.measured(clocks.now, clocks.advance(WINDOW_S, 1.0, 1.0)) == 1
    assert share.measured(clocks.now, clocks.advance(WINDOW_S, 0.05, 1.0)) == 2


def test_a_window_restarts_after_a_splice_or_a_new_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    clocks = Clocks()
    share = ThreadShare(2, [0, 1], sample=lambda _: clocks.now)
    seen: list[tuple[CpuSample, CpuSample]] = []
    monkeypatch.setattr(share, "measured", lambda a, b: seen.append((a, b)))
    share.tick()
    clocks.advance(WINDOW_S / 2, 0.0, 2.0)  # decoding
    share.tick()
    time.sleep(0.01)
    clocks.advance(WINDOW_S, 2.0, 0.0)  # a cloud engine on this machine answers a call
    share.tick(fresh=True)  # its text was spliced: that time is not measured
    assert not seen
    clocks.advance(WINDOW_S, 0.0, 2.0)
    time.sleep(WINDOW_S)
    share.tick()
    assert len(seen) == 1
    start, end = seen[0]
    assert end[0] - start[0] == pytest.approx(WINDOW_S)  # only the decoding after the call


def test_threads_do_not_change_a_seeded_answer(slm_path: Path) -> None:
    """llama.cpp's logits are the same at any thread count, so following the machine's load
    mid-answer keeps the same seed's answer."""
    model = LlamaModel(slm_path, n_ctx=512, n_threads=2)
    chatml = "<|im_start|>user\nName a fruit.<|im_end|>\n<|im_start|>assistant\n"
    prompt = model.tokenize_prompt(chatml)

    def answer(switch_at: int | None) -> list[int]:
        model.set_threads(2)
        model.sync(prompt, exact=True)
        sampler = model.sampler(SamplingParams(temperature=0.8, seed=3))
        drawn = []
        for i in range(24):
            if i == switch_at:
                model.set_threads(1)
            drawn.append(sampler.sample())
            model.eval(drawn[-1:])
        sampler.close()
        return drawn

    assert answer(None) == answer(8)
    assert model.threads == 1
    model.close()


@pytest.mark.skipif(len(usable_cpus()) < 2, reason="one CPU: nothing to share")
def test_a_busy_process_beside_the_slm_takes_a_thread(
    slm_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_module, "machine_load", lambda: 0.0)  # start on every core
    model = LlamaModel(slm_path, n_ctx=1024)  # default threads: they follow the machine
    assert model.share is not None
    assert model.threads == model.share.cores == performance_cores()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        model.sync(model.tokenize_prompt("Once upon a time"))
        sampler = model.sampler(SamplingParams(temperature=0.8, seed=1))
        deadline = time.monotonic() + 4 * WINDOW_S + 2
        while model.threads == model.share.cores and time.monotonic() < deadline:
            model.eval([sampler.sample()])
            if model.n_tokens > 1000:
                model.truncate(8)
        sampler.close()
    finally:
        spinner.kill()
        spinner.wait()
    assert model.threads < model.share.cores
    assert model.share.others > LEAVE
    model.close()
