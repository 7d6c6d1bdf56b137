"""The wrappers around the cloud client: breaker, budget + ledger, privacy, audit, offline."""

from __future__ import annotations

import socket
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.app.cloud_stack import CloudStack, build_cloud
from edge.app.ledger import Ledger
from edge.app.runtime import build_relay
from edge.app.settings import EdgeSettings
from edge.clouds.breaker import CircuitBreaker
from edge.clouds.budget import BudgetedCloud
from edge.clouds.fallback import FallbackCloud
from edge.clouds.http import HttpCloud
from edge.clouds.privacy import PrivacyCap
from edge.clouds.settings import CapSettings, Price
from edge.core.cloud import CloudBudget, CloudEnd, CloudItem, CloudRequest, CloudText
from edge.reservations import Claim
from protocol.errors import CloudUnavailable
from tests.conftest import free_port


def request(max_tokens: int = 8, context_tokens: int = 20, answer: str = "a1") -> CloudRequest:
    return CloudRequest(
        call_id="c", answer_id=answer, prompt="The sky is", messages=[],
        max_tokens=max_tokens, context_tokens=context_tokens,
    )  # fmt: skip


def http(url: str, key: str = "key-a") -> HttpCloud:
    return HttpCloud(url, api_key=key, temperature=0.0, retries=0)


class Flaky:
    """Fault injection: fails while ``down`` is set, else answers one piece."""

    def __init__(self) -> None:
        self.down = True
        self.calls = 0

    def stream(self, req: CloudRequest) -> Iterator[CloudItem]:
        self.calls += 1
        if self.down:
            raise CloudUnavailable("injected failure")
        yield CloudText("ok")
        yield CloudEnd(outcome="ok", finish_reason="length", completion_tokens=1)


def test_breaker_opens_skips_then_probes_and_recovers() -> None:
    now = [0.0]
    inner = Flaky()
    breaker = CircuitBreaker(inner, failures=2, cooldown_s=10, clock=lambda: now[0])
    cloud = FallbackCloud(breaker)
    for _ in range(2):
        assert list(cloud.stream(request()))[-1].outcome == "fallback"
    assert breaker.state == "open"
    (end,) = list(cloud.stream(request()))
    assert "circuit open" in end.reason
    assert inner.calls == 2  # skipped without touching the cloud
    now[0] = 11.0
    assert breaker.state == "half-open"
    assert list(cloud.stream(request()))[-1].outcome == "fallback"  # the probe fails
    assert breaker.state == "open"
    assert inner.calls == 3
    now[0] = 22.0
    inner.down = False
    assert list(cloud.stream(request()))[-1].outcome == "ok"
    assert breaker.state == "closed"


def test_an_open_breaker_skips_the_cloud_before_any_reservation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYLLM_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("RELAYLLM_DATA_DIR", str(tmp_path))
    settings = EdgeSettings(
        cloud_url=f"http://127.0.0.1:{free_port()}/v1", cloud_model="m", cloud_api="chat",
        retries=0, breaker_failures=1, breaker_cooldown_s=600,
        caps=CapSettings(tokens_per_day=100, usd_per_month=1.0),
    )  # fmt: skip
    ledger = Ledger(tmp_path / "l.db")
    stack = build_cloud(settings, ledger=ledger)
    assert isinstance(stack, CloudStack)
    assert list(stack.stream(request()))[-1].outcome == "fallback"  # unreachable: it opens
    assert stack.clouds[0].breaker.state == "open"
    reserved = []
    monkeypatch.setattr(ledger, "reserve", lambda *args, **kwargs: reserved.append(args))
    end = list(stack.stream(request()))[-1]
    assert end.outcome == "fallback"
    assert "circuit open" in end.reason
    assert reserved == []  # no reservation: the budget was never asked
    with sqlite3.connect(tmp_path / "l.db") as db:  # only the first call's row
        assert db.execute("SELECT outcome FROM calls").fetchall() == [("fallback",)]


def test_budget_exhausted_means_no_call(tmp_path: Path) -> None:
    dead = http(f"http://127.0.0.1:{free_port()}/v1")
    cloud = BudgetedCloud(dead, Ledger(tmp_path / "l.db"), caps=CapSettings(tokens_per_day=0),
                          price=Price(), endpoint="e", model="m")  # fmt: skip
    items = list(cloud.stream(request()))
    assert items[0] == CloudBudget(requested=8, granted=0, reason="daily token cap")
    assert isinstance(items[-1], CloudEnd)
    assert items[-1].outcome == "refused"  # refused, not a failed network call


def test_budget_shrinks_the_call_and_settles_real_use(tmp_path: Path, cloud_url: str) -> None:
    ledger = Ledger(tmp_path / "l.db")
    price = Price(prompt=1.0, completion=2.0)
    cloud = BudgetedCloud(http(f"{cloud_url}/v1"), ledger, caps=CapSettings(tokens_per_day=3),
                          price=price, endpoint="e", model="m")  # fmt: skip
    items = list(cloud.stream(request(max_tokens=8)))
    assert items[0] == CloudBudget(requested=8, granted=3, reason="daily token cap")
    end = items[-1]
    assert isinstance(end, CloudEnd)
    assert end.outcome == "ok"
    assert 0 < end.completion_tokens <= 3
    assert end.cost_usd == pytest.approx((end.prompt_tokens * 1 + end.completion_tokens * 2) / 1e6)
    spend = Ledger(tmp_path / "l.db").spend("day")  # a fresh handle: survives a restart
    assert (spend.tokens, spend.calls) == (end.completion_tokens, 1)
    assert spend.usd == pytest.approx(end.cost_usd)
    assert list(cloud.stream(request()))[-1].outcome in ("ok", "refused")
    assert Ledger(tmp_path / "l.db").spend("day").tokens <= 3


def test_dollar_cap_limits_tokens(tmp_path: Path) -> None:
    inner = Flaky()
    inner.down = False
    caps = CapSettings(usd_per_month=0.0001)
    price = Price(prompt=0, completion=20.0)
    ledger = Ledger(tmp_path / "l.db")
    cloud = BudgetedCloud(inner, ledger, caps=caps, price=price, endpoint="e", model="m")
    items = list(cloud.stream(request(max_tokens=100)))
    assert items[0] == CloudBudget(requested=100, granted=5, reason="monthly dollar cap")


def test_per_answer_cap(tmp_path: Path) -> None:
    inner = Flaky()
    inner.down = False
    cloud = BudgetedCloud(inner, Ledger(tmp_path / "l.db"), caps=CapSettings(tokens_per_answer=1),
                          price=Price(), endpoint="e", model="m")  # fmt: skip
    assert list(cloud.stream(request(answer="x")))[-1].outcome == "ok"
    assert list(cloud.stream(request(answer="x")))[-1].outcome == "refused"
    assert list(cloud.stream(request(answer="y")))[-1].outcome == "ok"


def test_concurrent_answers_never_overspend(tmp_path: Path, cloud_url: str) -> None:
    path, results = tmp_path / "l.db", []

    def answer() -> None:  # each thread has its own ledger handle, as processes would
        cloud = BudgetedCloud(http(f"{cloud_url}/v1"), Ledger(path),
                              caps=CapSettings(tokens_per_day=6), price=Price(),
                              endpoint="e", model="m")  # fmt: skip
        results.append(
            list(cloud.stream(request(max_tokens=6, answer=threading.current_thread().name)))
        )

    threads = [threading.Thread(target=answer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Ledger(path).spend("day").tokens <= 6
    granted = [r[0].granted if isinstance(r[0], CloudBudget) else 6 for r in results]
    assert sum(granted) <= 6


def test_a_crash_mid_call_leaves_the_ledger_intact(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "l.db", stale_after_s=60)
    ledger.reserve("", lambda spending: Claim(10, 0.0), endpoint="e", model="m")
    # The process died before settling: the reservation still counts ...
    assert Ledger(tmp_path / "l.db").spend("day").tokens == 10
    # ... until it goes stale, and the file is a sound database throughout.
    assert Ledger(tmp_path / "l.db", stale_after_s=0).spend("day").tokens == 0
    with sqlite3.connect(tmp_path / "l.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_privacy_cap_refuses_before_sending(tmp_path: Path) -> None:
    inner = Flaky()
    items = list(PrivacyCap(inner, max_context_tokens=10).stream(request(context_tokens=11)))
    assert items[-1].outcome == "refused"
    assert "privacy cap" in items[-1].reason
    assert inner.calls == 0


def test_offline_mode_opens_no_socket(monkeypatch: pytest.MonkeyPatch, slm: object) -> None:
    opened: list[object] = []
    real_connect = socket.socket.connect

    def spy(self: socket.socket, address: object) -> None:
        opened.append(address)
        real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", spy)
    settings = EdgeSettings(offline=True, max_tokens=12, temperature=0, policy="learned")
    relay = build_relay(settings, model=slm)  # type: ignore[arg-type]
    prompt = relay.prompt([{"role": "user", "content": "Hi"}])
    events = list(relay.answer(prompt, prefix="Yes <call>9</call>"))
    fallbacks = [e for e in events if e.type == "fallback"]
    assert [e.reason for e in fallbacks] == ["offline mode"]
    assert events[-1].type == "done"
    assert opened == []


RESERVE_IN_A_PROCESS = """
import sys
from pathlib import Path
from edge.clouds.budget import BudgetedCloud
from edge.core.cloud import CloudEnd, CloudRequest, CloudText
from edge.app.cloud_stack import CloudStack, build_cloud
from edge.app.ledger import Ledger
from edge.clouds.settings import CapSettings, Price

class Instant:
    def stream(self, request):
        yield CloudText("x" * request.max_tokens)
        yield CloudEnd(outcome="ok", finish_reason="length", completion_tokens=request.max_tokens)

cloud = BudgetedCloud(Instant(), Ledger(Path(sys.argv[1])), caps=CapSettings(tokens_per_day=6),
                      price=Price(), endpoint="e", model="m")
request = CloudRequest(call_id="c", answer_id=sys.argv[2], prompt="p", messages=[], max_tokens=6)
print(list(cloud.stream(request))[-1].completion_tokens)
"""


def test_concurrent_processes_never_overspend(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "l.db"
    Ledger(path)
    command = [sys.executable, "-c", RESERVE_IN_A_PROCESS, str(path)]
    runs = [
        subprocess.Popen([*command, str(i)], stdout=subprocess.PIPE, text=True) for i in range(4)
    ]
    used = [int(run.communicate(timeout=60)[0].strip()) for run in runs]
    assert sum(used) <= 6
    assert Ledger(path).spend("day").tokens == sum(used) <= 6
