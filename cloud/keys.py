"""API keys and their limits: ``sha256:`` digests, the TOML keys file, per-key budgets.

A keys file whose name ends in ``.toml`` names each key and may set its limits
and prices (a key's own value wins, then the ``--tokens-per-day`` /
``--requests-per-minute`` flags, then ``[defaults]``)::

    [defaults]
    tokens_per_day = 200000
    requests_per_minute = 60

    [keys.alice]
    hash = "sha256:<64 hex digits>"      # printed by `relay-cloud hash-key`
    tokens_per_day = 5000
    usd_per_day = 1.50
    price_prompt_usd_per_mtok = 0.5
    price_completion_usd_per_mtok = 1.5

Any other keys file holds one key per line (or its ``sha256:`` digest). Keys
given as plain text are hashed on load and named ``key-`` plus the first eight
hex digits of their digest; only digests are kept. Usage is recorded under
the name, never the key.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.openai_compat.server import key_digest
from edge.reservations import Price
from protocol.errors import SetupError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

if TYPE_CHECKING:
    from cloud.settings import CloudSettings

__all__ = ["ANONYMOUS", "KeyPolicy", "Limits", "hash_key", "load_keys"]

ANONYMOUS = "anonymous"
"""The name usage is recorded under when no key is required (``--insecure-no-auth``)."""

_DIGEST = re.compile(r"sha256:[0-9a-f]{64}")


class Limits(BaseModel):
    """Budgets (per UTC day), a request rate and prices of one key; ``None``: unlimited.

    The prices keep the keys file's names; :attr:`price` is them as a :class:`Price`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tokens_per_day: int | None = Field(
        None, ge=0, description="Tokens generated (completion); the prompt counts in dollars."
    )
    requests_per_minute: int | None = Field(None, ge=0, description="Over any 60 seconds.")
    usd_per_day: float | None = Field(None, ge=0, description="Dollars at the prices below.")
    price_prompt_usd_per_mtok: float = Field(0.0, ge=0, description="$ per 1M prompt tokens.")
    price_completion_usd_per_mtok: float = Field(0.0, ge=0, description="$ per 1M completions.")

    def over(self, base: Limits) -> Limits:
        """These limits, with the ones set here taking the place of ``base``'s."""
        own = self.model_dump(include=set(Limits.model_fields), exclude_unset=True)
        return Limits(**{**base.model_dump(), **own})

    @property
    def price(self) -> Price:
        """This key's prices as the one price model the budgets use."""
        return Price(
            prompt=self.price_prompt_usd_per_mtok, completion=self.price_completion_usd_per_mtok
        )


class _Entry(Limits):
    hash: str = Field(pattern=_DIGEST.pattern, description="sha256:<hex> of the key.")


class _KeysFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    defaults: Limits = Limits()
    keys: dict[str, _Entry] = Field(default_factory=dict)


@dataclass(frozen=True)
class KeyPolicy:
    """One accepted key: its name, the digest it is checked against, and its limits."""

    name: str
    digest: bytes
    limits: Limits


def hash_key(key: str) -> str:
    """The ``sha256:<hex>`` line a keys file stores for ``key``."""
    return "sha256:" + key_digest(key).hex()


def load_keys(settings: CloudSettings) -> tuple[tuple[KeyPolicy, ...], Limits]:
    """The accepted keys and the limits of everyone else (the anonymous user, with no keys)."""
    flags = Limits(
        **{
            name: value
            for name in ("tokens_per_day", "requests_per_minute")
            if (value := getattr(settings, name)) is not None
        }
    )
    path = settings.api_keys_file
    if path is not None and path.suffix == ".toml":
        parsed = _read_toml(path)
        defaults = flags.over(parsed.defaults)
        named = [(name, entry.hash, entry.over(defaults)) for name, entry in parsed.keys.items()]
        plain = [key.get_secret_value() for key in settings.api_keys]
    else:
        defaults, named, plain = flags, [], list(settings.load_api_keys())
    for key in plain:
        digest = key if _DIGEST.fullmatch(key) else hash_key(key)
        named.append((f"key-{digest[7:15]}", digest, defaults))
    return _policies(named), defaults


def _policies(named: Sequence[tuple[str, str, Limits]]) -> tuple[KeyPolicy, ...]:
    seen: dict[str, str] = {}
    for name, digest, _ in named:
        if digest in seen:
            raise SetupError(f"API keys {seen[digest]!r} and {name!r} are the same key")
        seen[digest] = name
    return tuple(KeyPolicy(n, bytes.fromhex(d.removeprefix("sha256:")), lim) for n, d, lim in named)


def _read_toml(path: Path) -> _KeysFile:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise SetupError(f"cannot read the API keys file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise SetupError(f"the API keys file {path} is not valid TOML: {exc}") from exc
    try:
        return _KeysFile.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        hint = " (make one with: relay-cloud hash-key)" if where.endswith(".hash") else ""
        raise SetupError(f"the API keys file {path}: {where}: {first['msg']}{hint}") from exc
