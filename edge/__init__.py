"""On-device runtime: the relay loop, the local model, the guarded cloud client, the CLI.

Never imports torch or transformers; llama_cpp is imported only when a model is loaded.
"""

from edge.client import CloudClient, CloudEnd, CloudRequest, CloudText
from edge.local_model import LocalModel, TextCodec
from edge.loop import RelayLoop
from edge.policies import CallPolicy, make_policy
from edge.prompt import ChatFormat, RelayPrompt, build_prompt
from edge.record import AnswerRecord, CallRecord
from edge.relay import RelayAnswer, RelayLimits

__all__ = [
    "AnswerRecord",
    "CallPolicy",
    "CallRecord",
    "ChatFormat",
    "CloudClient",
    "CloudEnd",
    "CloudRequest",
    "CloudText",
    "LocalModel",
    "RelayAnswer",
    "RelayLimits",
    "RelayLoop",
    "RelayPrompt",
    "TextCodec",
    "build_prompt",
    "make_policy",
]
