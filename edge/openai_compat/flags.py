"""Command-line flags made from settings fields: a flag's help and default are its field's.

A command names the settings fields it takes (:class:`Flag`: the field, the type the flag
parses, its name when that is not ``--field-name``), and :meth:`SettingsFlags.command`
puts them into the command's parameters where it has ``flags``; the command receives the
flags given as ``{field: value}`` in that one parameter. Several commands share one list of
flags instead of repeating a block of options. A flag not given is left out (``--seed 0``
is a value), so the settings still read the environment, then their file, then their
defaults: flags win.

A flag's help is read from its field when help is shown (:class:`FieldHelp`, the
command's class): the description, the choices of a ``Literal``, the default, and what the
flag adds (:attr:`Flag.note`). Commands are listed without importing the settings, so
``relay --help`` loads no pydantic, and no help text repeats a default that could drift.
Used by ``relay`` and ``relay-cloud``.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

import typer
from typer.core import TyperCommand

__all__ = ["FieldHelp", "Flag", "LogFormat", "LogFormatChoice", "LogLevel", "SettingsFlags"]

F = TypeVar("F", bound=Callable[..., Any])


class LogFormatChoice(str, Enum):
    """What ``--log-format`` of the servers takes."""

    text = "text"
    json = "json"


LogLevel = Annotated[str, typer.Option(help="Log level (info: a line per request).")]
"""``--log-level`` of the servers (default ``info``)."""
LogFormat = Annotated[LogFormatChoice, typer.Option(help="text, or json: one object a line.")]
"""``--log-format`` of the servers (default ``LogFormatChoice.text``)."""


@dataclass(frozen=True)
class Flag:
    """One settings field as a flag: ``type`` is what the flag parses (``bool``: a switch,
    ``list[str]``: repeatable); ``name`` the flag, when not ``--field-name``; ``note`` what
    the flag adds to the field's description; ``default`` the command's own default, when it
    has one (then the flag is always given)."""

    field: str
    type: Any = str
    name: str | None = None
    note: str = ""
    default: Any = None

    @property
    def option(self) -> str:
        """The flag as typed on the command line."""
        return self.name or "--" + self.field.replace("_", "-")

    def parameter(self) -> inspect.Parameter:
        """The command parameter typer makes this flag from."""
        parsed = self.type if self.default is not None else self.type | None
        return inspect.Parameter(
            self.field,
            inspect.Parameter.KEYWORD_ONLY,
            default=self.default,
            annotation=Annotated[parsed, typer.Option(self.option)],
        )


class SettingsFlags:
    """The flags of one settings class, named ``module:Class`` (imported when help is shown)."""

    def __init__(self, settings: str) -> None:
        self.settings = settings

    def add(self, *flags: Flag) -> Callable[[F], F]:
        """Put ``flags`` into the command where its ``flags`` parameter is; the command gets
        the ones given as ``{field: value}`` there."""

        def decorate(command: F) -> F:
            signature = inspect.signature(command, eval_str=True)
            own = list(signature.parameters.values())
            at = [p.name for p in own].index("flags")
            later = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in own[at + 1 :]]
            parameters = [*own[:at], *(f.parameter() for f in flags), *later]

            @functools.wraps(command)
            def with_flags(**values: Any) -> Any:
                given = {f.field: values.pop(f.field) for f in flags}
                return command(**values, flags={k: v for k, v in given.items() if _given(v)})

            with_flags.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
            with_flags.__annotations__ = {p.name: p.annotation for p in parameters}
            with_flags.field_flags = (self, flags)  # type: ignore[attr-defined]
            return with_flags  # type: ignore[return-value]

        return decorate

    def command(self, app: typer.Typer, *flags: Flag, name: str | None = None) -> Callable[[F], F]:
        """``app.command`` for a command that takes ``flags`` (:meth:`add`), whose help
        shows their fields' (:class:`FieldHelp`)."""

        def decorate(command: F) -> F:
            app.command(name, cls=FieldHelp)(self.add(*flags)(command))
            return command

        return decorate

    def describe(self, flags: Sequence[Flag]) -> dict[str, str]:
        """Each flag's help, by field: read from the settings class."""
        module, _, name = self.settings.partition(":")
        fields = getattr(importlib.import_module(module), name).model_fields
        return {flag.field: _help(flag, fields[flag.field]) for flag in flags}


def _given(value: Any) -> bool:
    """Whether a flag was given: typer passes ``None`` (or no items) for one that was not."""
    return value is not None and value != [] and value != ()


def _help(flag: Flag, field: Any) -> str:
    """The field's description, its choices (a ``Literal`` whose values it does not name),
    its default (not for a switch, nor a command's own default) and the flag's note."""
    description = field.description or ""
    parts = [description]
    choices = _choices(field.annotation)
    if choices and not all(choice in description for choice in choices):
        parts.append(f"One of: {', '.join(choices)}.")
    default = field.get_default(call_default_factory=True)
    unset = default is None or default is False or default == [] or default == {}
    if flag.default is None and not unset:
        parts.append(f"Default: {default}.")
    parts.append(flag.note)
    return " ".join(part for part in parts if part)


def _choices(annotation: Any) -> list[str]:
    """The values of a ``Literal`` annotation (also of an ``Optional`` or a list), else none."""
    if get_origin(annotation) is Literal:
        return [str(value) for value in get_args(annotation)]
    options = [a for a in get_args(annotation) if a is not type(None)]
    if len(options) == 1:
        return _choices(options[0])
    return []


class FieldHelp(TyperCommand):
    """A command whose settings flags (:meth:`SettingsFlags.add`) show their fields' help."""

    def format_help(self, ctx: Any, formatter: Any) -> None:
        described = getattr(self.callback, "field_flags", None)
        if described is not None:
            settings, flags = described
            helps = settings.describe(flags)
            for param in self.params:
                if param.name in helps:
                    param.help = helps[param.name]
        super().format_help(ctx, formatter)
