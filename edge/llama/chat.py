"""Chat prompts from a model's own Jinja template, including continuing an answer.

``render_chat`` turns messages into the prompt text a model was trained on, in
a sandboxed Jinja environment set up as Hugging Face's chat templates expect
(``raise_exception``, ``strftime_now``, ``tojson``, loop controls). Template
switches such as ``enable_thinking`` (Qwen3) are passed through.

With ``continue_final=True`` the last (assistant) message is left open, so the
model continues it instead of starting a new turn: the template is rendered
with a marker in place of that message, cut at the marker, and the real text
appended unchanged (trailing spaces included, which matters mid-answer).

:class:`LlamaChat` is the :class:`edge.core.prompt.ChatFormat` of a GGUF model: its
template from the GGUF metadata (ChatML when there is none), its tokenizer,
and the turn markers a cloud continuation must stop at.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jinja2 import Template

    from edge.llama.model import LlamaModel

__all__ = ["CHATML_TEMPLATE", "MARKER_PROBE", "LlamaChat", "render_chat"]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""Used for models whose GGUF carries no chat template."""

MARKER_PROBE = (
    {"role": "user", "content": "a"},
    {"role": "assistant", "content": "b"},
    {"role": "user", "content": "c"},
)
"""A small conversation whose rendering shows every marker a template uses."""

_MARKER = "\x1frelayllm-continue\x1f"


def render_chat(
    messages: Sequence[Mapping[str, str]],
    *,
    template: str | None,
    bos_token: str = "",
    eos_token: str = "",
    continue_final: bool = False,
    enable_thinking: bool = False,
) -> str:
    """The prompt for ``messages``; see the module docstring for ``continue_final``."""
    if continue_final and (not messages or messages[-1]["role"] != "assistant"):
        raise ValueError("continue_final needs a final assistant message")
    rendered = [dict(m) for m in messages]
    if continue_final:
        rendered[-1] = {"role": "assistant", "content": _MARKER}
    prompt = _compile(template or CHATML_TEMPLATE).render(
        messages=rendered,
        add_generation_prompt=not continue_final,
        bos_token=bos_token,
        eos_token=eos_token,
        enable_thinking=enable_thinking,
    )
    if not continue_final:
        return prompt
    cut = prompt.find(_MARKER)
    if cut == -1:
        raise ValueError("the chat template drops the final assistant message")
    return prompt[:cut] + messages[-1]["content"]


@cache
def _compile(template: str) -> Template:
    from jinja2.exceptions import TemplateError
    from jinja2.ext import loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    def tojson(value: Any, indent: int | None = None) -> str:
        return json.dumps(value, ensure_ascii=False, indent=indent)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env.from_string(template)


class LlamaChat:
    """Renders and tokenizes prompts for a GGUF model (a :class:`edge.core.prompt.ChatFormat`)."""

    def __init__(self, model: LlamaModel, *, enable_thinking: bool = False) -> None:
        self.model = model
        self.enable_thinking = enable_thinking
        self.template = model.metadata.get("tokenizer.chat_template")

    def render(self, messages: Sequence[Mapping[str, str]], *, continue_final: bool = False) -> str:
        return render_chat(
            messages,
            template=self.template,
            bos_token=self.model.special_token_text("bos"),
            eos_token=self.model.special_token_text("eos"),
            continue_final=continue_final,
            enable_thinking=self.enable_thinking,
        )

    def encode(self, prompt: str) -> list[int]:
        return self.model.tokenize_prompt(prompt)

    def markers(self) -> tuple[str, ...]:
        """Control-token texts of the template (``<|im_start|>``, ``<|im_end|>``, ...)."""
        tokens = self.encode(self.render(MARKER_PROBE))
        eos = self.model.llama.token_eos()
        texts = self.model.control_texts([*tokens, *([eos] if eos >= 0 else [])])
        return tuple(t for t in texts if t)
