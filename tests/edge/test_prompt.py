"""Prompts: the SLM's tokens, the cloud's view without commands, conversations that outgrow."""

from __future__ import annotations

import pytest

from edge.core.prompt import build_prompt
from edge.llama import LlamaChat, LlamaModel, render_chat
from protocol.errors import ContextOverflow

LONG = "Tell me about rivers, lakes, seas and the weather that moves between them. " * 6


def conversation(turns: int) -> list[dict[str, str]]:
    messages = [{"role": "system", "content": "Be brief."}]
    for i in range(turns):
        messages.append({"role": "user", "content": f"Question {i}: {LONG}"})
        messages.append({"role": "assistant", "content": f"Answer {i},<call>4</call> {LONG}"})
    return [*messages, {"role": "user", "content": "And now?"}]


def test_a_conversation_that_outgrows_the_context_drops_its_oldest_turns(slm: LlamaModel) -> None:
    chat = LlamaChat(slm)
    messages = conversation(6)
    whole = len(chat.encode(chat.render(messages)))
    prompt = build_prompt(chat, messages, n_ctx=whole // 2, reserve=64)
    assert len(prompt.tokens) + 64 <= whole // 2
    assert prompt.dropped > 0
    assert prompt.dropped % 2 == 0  # whole turns go, user first
    text = slm.detokenize(prompt.tokens).decode()
    assert "Be brief." in text  # the system prompt stays
    assert "Question 0:" not in text
    assert "And now?" in text
    assert "<call>" not in prompt.cloud_text
    assert all("<call>" not in m.content for m in prompt.cloud_messages)
    assert "<call>4</call>" in text


def test_a_prompt_that_cannot_fit_names_the_numbers(slm: LlamaModel) -> None:
    chat = LlamaChat(slm)
    with pytest.raises(ContextOverflow, match=r"the prompt has \d+ tokens .* holds 100"):
        build_prompt(chat, [{"role": "user", "content": LONG}], n_ctx=100)
    with pytest.raises(ValueError, match="at least one message"):
        build_prompt(chat, [], n_ctx=100)


def test_the_cloud_stops_at_the_templates_turn_markers(slm: LlamaModel) -> None:
    prompt = build_prompt(LlamaChat(slm), [{"role": "user", "content": "Hi"}], n_ctx=512)
    assert set(prompt.stops) == {"<|im_start|>", "<|im_end|>"}


def test_thinking_switch_reaches_the_template() -> None:
    template = (
        "{% for m in messages %}{{ m['content'] }}{% endfor %}"
        "{% if add_generation_prompt %}{% if enable_thinking is defined and not enable_thinking %}"
        "<think></think>{% endif %}{% endif %}"
    )
    user = [{"role": "user", "content": "Hi"}]
    assert render_chat(user, template=template) == "Hi<think></think>"
    assert render_chat(user, template=template, enable_thinking=True) == "Hi"


def test_templates_may_use_hugging_face_helpers() -> None:
    template = (
        "{% for m in messages %}{% if m['role'] == 'tool' %}{{ raise_exception('no tools') }}"
        "{% endif %}{{ m | tojson }}{% endfor %}"
    )
    assert render_chat([{"role": "user", "content": "é"}], template=template) == (
        '{"role": "user", "content": "é"}'
    )
    with pytest.raises(Exception, match="no tools"):
        render_chat([{"role": "tool", "content": "x"}], template=template)
