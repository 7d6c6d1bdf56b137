"""Chat prompts from a model's own Jinja template, including continuing an answer.

``render_chat`` turns messages into the prompt text a model was trained on. With
``continue_final=True`` the last (assistant) message is left open, so the model
continues it instead of starting a new turn: the template is rendered with a
marker in place of that message, cut at the marker, and the real text appended
unchanged (trailing spaces included, which matters mid-answer).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

__all__ = ["CHATML_TEMPLATE", "render_chat"]

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
"""Used for models whose GGUF carries no chat template."""

_MARKER = "\x1frelayllm-continue\x1f"


def render_chat(
    messages: Sequence[Mapping[str, str]],
    *,
    template: str | None,
    bos_token: str = "",
    eos_token: str = "",
    continue_final: bool = False,
) -> str:
    """The prompt for ``messages``; see the module docstring for ``continue_final``."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    if continue_final and (not messages or messages[-1]["role"] != "assistant"):
        raise ValueError("continue_final needs a final assistant message")
    formatter = Jinja2ChatFormatter(
        template=template or CHATML_TEMPLATE,
        eos_token=eos_token,
        bos_token=bos_token,
        add_generation_prompt=not continue_final,
    )
    rendered = list(messages)
    if continue_final:
        rendered[-1] = {"role": "assistant", "content": _MARKER}
    prompt = formatter(messages=[dict(m) for m in rendered]).prompt
    if not continue_final:
        return prompt
    cut = prompt.find(_MARKER)
    if cut == -1:
        raise ValueError("the chat template drops the final assistant message")
    return prompt[:cut] + messages[-1]["content"]
