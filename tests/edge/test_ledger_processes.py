"""One ledger, many processes: a shared cap holds and is reached; a killed process loses nothing."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from edge.app.ledger import Ledger
from edge.reservations import Claim

CAP, PER_CALL = 120, 8

ANSWERS_IN_A_PROCESS = """
import json, sys, threading
from pathlib import Path
from edge.clouds.budget import BudgetedCloud
from edge.core.cloud import CloudBudget, CloudEnd, CloudRequest, CloudText
from edge.clouds.http import HttpCloud
from edge.app.ledger import Ledger
from edge.clouds.settings import CapSettings, Price

path, url, cap, per_call, threads, name = sys.argv[1:7]
ledger = Ledger(Path(path))
cloud = BudgetedCloud(HttpCloud(url, api_key="key-a", temperature=0.0, retries=0), ledger,
                      caps=CapSettings(tokens_per_day=int(cap)), price=Price(), endpoint="e",
                      model="m")
start, lock = threading.Barrier(int(threads)), threading.Lock()

def answer(i):
    request = CloudRequest(call_id="c", answer_id=f"{name}-{i}", messages=[],
                           prompt="Count from 1 to 100: 1, 2, 3,", max_tokens=int(per_call))
    start.wait()
    granted, received, end = int(per_call), 0, None
    for item in cloud.stream(request):
        if isinstance(item, CloudBudget):
            granted = item.granted
        elif isinstance(item, CloudText):
            received += 1
        elif isinstance(item, CloudEnd):
            end = item
    with lock:
        line = {"granted": granted, "received": received, "outcome": end.outcome,
                "finish": end.finish_reason, "billed": end.completion_tokens}
        print(json.dumps(line), flush=True)

workers = [threading.Thread(target=answer, args=(i,)) for i in range(int(threads))]
for w in workers: w.start()
for w in workers: w.join()
"""


def test_fifty_answers_in_five_processes_share_one_cap(tmp_path: Path, cloud_url: str) -> None:
    path = tmp_path / "ledger.sqlite3"
    Ledger(path).close()
    command = [sys.executable, "-c", ANSWERS_IN_A_PROCESS, str(path), f"{cloud_url}/v1",
               str(CAP), str(PER_CALL), "10"]  # fmt: skip
    runs = [subprocess.Popen([*command, f"p{i}"], stdout=subprocess.PIPE, text=True)
            for i in range(5)]  # fmt: skip
    answers = []
    for run in runs:
        stdout, _ = run.communicate(timeout=300)
        assert run.returncode == 0
        answers += [json.loads(line) for line in stdout.splitlines()]
    assert len(answers) == 50
    granted = sum(a["granted"] for a in answers)
    assert granted == CAP  # reached exactly: not overspent, not over-reserved to nothing
    served = [a for a in answers if a["outcome"] == "ok"]
    assert all(a["billed"] == a["received"] <= a["granted"] for a in served)
    assert all(a["received"] == a["granted"] for a in served if a["finish"] == "length")
    assert {a["outcome"] for a in answers} == {"ok", "refused"}
    spent = Ledger(path).spend("day")
    assert spent.tokens == sum(a["received"] for a in answers) <= CAP
    assert spent.calls == 50


KILLED_MID_CALL = """
import sys
from pathlib import Path
from edge.clouds.budget import BudgetedCloud
from edge.core.cloud import CloudRequest, CloudText
from edge.clouds.http import HttpCloud
from edge.app.ledger import Ledger
from edge.clouds.settings import CapSettings, Price

cloud = BudgetedCloud(HttpCloud(sys.argv[2], api_key="key-a", temperature=0.0, retries=0),
                      Ledger(Path(sys.argv[1])), caps=CapSettings(tokens_per_day=1000),
                      price=Price(), endpoint="e", model="m")
for i, max_tokens in enumerate([3, 3, 400]):
    request = CloudRequest(call_id=str(i), answer_id="a", messages=[], max_tokens=max_tokens,
                           prompt="Count from 1 to 500: 1, 2, 3,")
    for item in cloud.stream(request):
        if i == 2 and isinstance(item, CloudText):
            print("streaming", flush=True)
            sys.stdin.read()  # held here, mid-call, until killed
"""


def test_kill_9_mid_call_keeps_what_was_settled_and_the_reservation_expires(
    tmp_path: Path, cloud_url: str
) -> None:
    path = tmp_path / "ledger.sqlite3"
    victim = subprocess.Popen(
        [sys.executable, "-c", KILLED_MID_CALL, str(path), f"{cloud_url}/v1"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert victim.stdout is not None
    assert victim.stdout.readline().strip() == "streaming"
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    assert victim.returncode == -signal.SIGKILL
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        rows = db.execute("SELECT outcome, completion_tokens FROM calls ORDER BY id").fetchall()
    assert rows == [("ok", 3), ("ok", 3), ("reserved", 400)]  # both settled calls survived
    assert Ledger(path).spend("day").tokens == 406  # a fresh reservation still counts ...
    expired = Ledger(path, stale_after_s=0)  # ... until it is stale, then it frees the cap
    assert expired.spend("day").tokens == 6
    _, claim = expired.reserve(
        "",
        lambda spending: Claim(1000 - spending.spend("day").tokens, 0.0),
        endpoint="e",
        model="m",
    )
    assert claim.completion_tokens == 994
