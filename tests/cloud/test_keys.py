"""Keys and their limits: the TOML file, digests, the grant rule, and one-line errors."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cloud.auth import ApiKeys
from cloud.cli import app
from cloud.keys import KeyPolicy, Limits, hash_key, load_keys
from cloud.quota import grant
from cloud.settings import CloudSettings
from edge.reservations import Recent, Spend
from protocol.errors import AuthenticationFailed, RateLimited, SetupError

SECRET = "alice-secret-7"
NOON = 1_790_000_000.0 - 1_790_000_000.0 % 86400 + 43200  # 12:00 UTC


def keys_file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "keys.toml"
    path.write_text(text)
    return path


def test_hash_key_prints_the_line_to_paste() -> None:
    result = CliRunner().invoke(app, ["hash-key"], input=f"{SECRET}\n")
    assert result.exit_code == 0
    digest = hashlib.sha256(SECRET.encode()).hexdigest()
    assert result.output.strip() == f'hash = "sha256:{digest}"'
    assert CliRunner().invoke(app, ["hash-key"], input="\n").exit_code == 2


def test_a_key_wins_over_the_flags_which_win_over_the_file_defaults(tmp_path: Path) -> None:
    path = keys_file(tmp_path, f"""
[defaults]
tokens_per_day = 1000
requests_per_minute = 10
usd_per_day = 2.0
[keys.alice]
hash = "{hash_key(SECRET)}"
tokens_per_day = 50
price_completion_usd_per_mtok = 1.5
[keys.bob]
hash = "{hash_key("bob")}"
""")  # fmt: skip
    settings = CloudSettings(api_keys_file=path, api_keys=["plain"], requests_per_minute=20)
    keys, defaults = load_keys(settings)
    by_name = {key.name: key.limits for key in keys}
    assert by_name["alice"] == Limits(tokens_per_day=50, requests_per_minute=20, usd_per_day=2.0,
                                      price_completion_usd_per_mtok=1.5)  # fmt: skip
    assert (
        by_name["bob"]
        == defaults
        == Limits(tokens_per_day=1000, requests_per_minute=20, usd_per_day=2.0)
    )
    plain = f"key-{hashlib.sha256(b'plain').hexdigest()[:8]}"
    assert set(by_name) == {"alice", "bob", plain}
    checker = ApiKeys(keys, defaults)
    assert checker.check(f"Bearer {SECRET}").name == "alice"
    assert checker.check("Bearer plain").name == plain
    with pytest.raises(AuthenticationFailed):
        checker.check("Bearer alice")
    assert SECRET.encode() not in repr(keys).encode()


def test_a_plain_keys_file_may_hold_digests(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    path.write_text(f"# team\n{hash_key(SECRET)}\nother\n")
    keys, _ = load_keys(CloudSettings(api_keys_file=path, tokens_per_day=5))
    checker = ApiKeys(keys)
    assert checker.check(f"Bearer {SECRET}").limits.tokens_per_day == 5
    assert checker.check("Bearer other").name.startswith("key-")
    assert ApiKeys((), Limits(tokens_per_day=3)).check(None).name == "anonymous"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[keys.alice\nhash = 1", "not valid TOML"),
        (f'[keys.alice]\nhash = "{SECRET}"', "keys.alice.hash: String should match pattern"),
        (f'[keys.alice]\nhash = "{hash_key(SECRET)}"\nkey = "{SECRET}"', "keys.alice.key"),
        ('[defaults]\ntokens_per_day = -1', "defaults.tokens_per_day"),
        (f'[keys.a]\nhash = "{hash_key(SECRET)}"\n[keys.b]\nhash = "{hash_key(SECRET)}"',
         "'a' and 'b' are the same key"),
    ],
)  # fmt: skip
def test_a_bad_keys_file_is_one_line_without_the_key(
    tmp_path: Path, text: str, expected: str
) -> None:
    settings = CloudSettings(api_keys_file=keys_file(tmp_path, text))
    with pytest.raises(SetupError) as caught:
        load_keys(settings)
    assert expected in caught.value.message
    assert SECRET not in caught.value.message
    assert "\n" not in caught.value.message


def test_serve_with_a_bad_keys_file_exits_with_one_line(tmp_path: Path) -> None:
    problems = tmp_path / "problems.jsonl"
    problems.write_text(json.dumps({"question": "Q?", "answer": "1", "solution": "1"}) + "\n")
    path = keys_file(tmp_path, f'[keys.alice]\nhash = "{SECRET}"\n')
    result = CliRunner().invoke(app, [
        "serve", "--engine", "expert", "--problems", str(problems), "--api-keys-file", str(path),
        "--state-url", f"sqlite:///{tmp_path / 'state.db'}",
    ])  # fmt: skip
    assert result.exit_code == 1
    assert result.output.startswith("error: the API keys file")
    assert "hash-key" in result.output
    assert "Traceback" not in result.output
    assert SECRET not in result.output


def test_serve_with_an_unreachable_state_store_exits_with_one_line(tmp_path: Path) -> None:
    problems = tmp_path / "problems.jsonl"
    problems.write_text(json.dumps({"question": "Q?", "answer": "1", "solution": "1"}) + "\n")
    result = CliRunner().invoke(app, [
        "serve", "--engine", "expert", "--problems", str(problems), "--api-key", "k",
        "--state-url", "postgresql://relay@127.0.0.1:1/relay",
    ])  # fmt: skip
    assert result.exit_code == 1
    assert result.output.startswith("error: cannot use the PostgreSQL state store")
    assert len(result.output.strip().splitlines()) == 1


def policy(**limits: float) -> KeyPolicy:
    return KeyPolicy("alice", b"", Limits(**limits))


QUIET = Recent(calls=0, oldest=None)  # no request in the last minute


def test_grant_shrinks_max_tokens_to_what_is_left_then_refuses_until_midnight() -> None:
    key = policy(tokens_per_day=100)  # tokens generated: the prompt is not counted
    assert grant(key, Spend(0, 0.0), QUIET, prompt=10, worst=50, now=NOON) == 50
    assert grant(key, Spend(80, 0.0), QUIET, prompt=10, worst=50, now=NOON) == 20
    with pytest.raises(RateLimited) as caught:
        grant(key, Spend(100, 0.0), QUIET, prompt=10, worst=50, now=NOON)
    assert caught.value.limit == "tokens_per_day"
    assert caught.value.retry_after_s == 43200
    assert "resets at 00:00 UTC, in 12 h 0 min" in caught.value.message


def test_grant_counts_dollars_at_the_key_prices() -> None:
    key = policy(usd_per_day=1.0, price_prompt_usd_per_mtok=1e4, price_completion_usd_per_mtok=1e5)
    assert grant(key, Spend(0, 0.0), QUIET, prompt=10, worst=50, now=NOON) == 9  # $0.9 left
    with pytest.raises(RateLimited, match=r"usd_per_day budget of \$1\.00"):
        grant(key, Spend(0, 0.9), QUIET, prompt=10, worst=50, now=NOON)


def test_grant_refuses_over_the_request_rate_until_the_oldest_leaves_the_minute() -> None:
    key = policy(requests_per_minute=3)
    assert grant(key, Spend(0, 0.0), Recent(2, NOON - 50), prompt=1, worst=5, now=NOON) == 5
    with pytest.raises(RateLimited) as caught:
        grant(key, Spend(0, 0.0), Recent(3, NOON - 50), prompt=1, worst=5, now=NOON)
    assert (caught.value.limit, caught.value.retry_after_s) == ("requests_per_minute", 10)


def test_a_utf8_key_matches_as_its_header_arrives() -> None:
    from edge.openai_compat.server import check_api_key, key_digest

    header = "Bearer " + "clé-ü".encode().decode("latin-1")  # how ASGI servers decode headers
    assert check_api_key(header, [key_digest("other"), key_digest("clé-ü")]) == 1
    with pytest.raises(AuthenticationFailed):
        check_api_key("Bearer clé-ü", [key_digest("other")])
