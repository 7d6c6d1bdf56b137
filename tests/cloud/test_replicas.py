"""Two relay-cloud replicas on one state store drain one key: never past its cap, yet to it."""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import httpx

from cloud.keys import hash_key
from cloud.state import key_usage, open_store
from tests.conftest import relay_cloud

PROMPT = "Count the words."  # 3 tokens to the expert engine
SLACK = 0  # what a reservation holds beyond what its request will use (it writes max_tokens)
CAP, MAX_TOKENS, WORKERS = 600, 40, 16  # the first wave alone would ask for 640 tokens
SECRET = "drain-secret"


@contextmanager
def replicas(tmp_path: Path, state_url: str) -> Iterator[list[str]]:
    problems = tmp_path / "problems.jsonl"
    solution = " ".join(f"w{i}" for i in range(500))
    problems.write_text(json.dumps({"question": PROMPT, "answer": "1", "solution": solution}))
    keys = tmp_path / "keys.toml"
    keys.write_text(f'[keys.drain]\nhash = "{hash_key(SECRET)}"\ntokens_per_day = {CAP}\n')
    args = ("--engine", "expert", "--problems", str(problems), "--api-keys-file", str(keys),
            "--state-url", state_url)  # fmt: skip
    with ExitStack() as stack:
        yield [stack.enter_context(relay_cloud(*args)) for _ in range(2)]


def drain(bases: list[str], workers: int) -> tuple[list[int], list[int]]:
    """Workers ask through the replicas in turn until each is refused: (tokens, statuses)."""
    used: list[int] = []
    statuses: list[int] = []
    turns = itertools.cycle(bases)
    lock, start = threading.Lock(), threading.Barrier(workers)
    body = {"prompt": PROMPT, "max_tokens": MAX_TOKENS}
    headers = {"Authorization": f"Bearer {SECRET}"}

    def work() -> None:
        with httpx.Client(timeout=60) as client:
            start.wait()
            while True:
                with lock:
                    base = next(turns)
                response = client.post(f"{base}/v1/completions", json=body, headers=headers)
                with lock:
                    statuses.append(response.status_code)
                if response.status_code != 200:
                    assert "tokens_per_day" in response.json()["error"]["message"]
                    return
                with lock:
                    used.append(response.json()["usage"]["completion_tokens"])

    threads = [threading.Thread(target=work) for _ in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return used, statuses


def check_drained(bases: list[str], state_url: str) -> None:
    used, statuses = drain(bases, WORKERS)
    assert set(statuses) == {200, 429}
    assert CAP - WORKERS * (SLACK + 1) <= sum(used) <= CAP  # near the cap under contention
    more, _ = drain(bases, 1)  # what reservations held back is granted once they settle
    store = open_store(state_url)
    try:
        (row,) = key_usage(store, "2000-01-01")
    finally:
        store.close()
    assert (row.key, row.unsettled) == ("drain", 0)
    assert row.completion_tokens == sum(used) + sum(more)  # tokens_per_day counts these
    assert sum(used) + sum(more) == CAP  # refused only with < 1 token left


def test_two_replicas_on_one_sqlite_file_never_overspend_a_key(tmp_path: Path) -> None:
    state_url = f"sqlite:///{tmp_path / 'state.db'}"
    with replicas(tmp_path, state_url) as bases:
        check_drained(bases, state_url)


def test_two_replicas_on_one_postgresql_never_overspend_a_key(
    tmp_path: Path, postgres_url: str
) -> None:
    with replicas(tmp_path, postgres_url) as bases:
        check_drained(bases, postgres_url)
