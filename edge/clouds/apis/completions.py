"""``completions``: the context as one raw prompt to ``/completions`` (vLLM, SGLang, llama.cpp's
server, TGI, relay-cloud, providers that keep the legacy route).

The most faithful continuation there is: the cloud reads exactly the text the
SLM reads (its chat template included) and writes on from the last character.
"""

from __future__ import annotations

from edge.clouds.apis.base import ApiCall, CloudApi, OpenAIStyle, Target
from edge.core.cloud import CloudRequest
from edge.openai_compat import request_body
from protocol.wire import MAX_STOP_SEQUENCES

__all__ = ["Completions"]


class Completions(OpenAIStyle):
    name: CloudApi = "completions"

    def call(self, request: CloudRequest, target: Target) -> ApiCall:
        body = request_body(
            "raw", model=target.model, prompt=request.prompt, max_tokens=request.max_tokens,
            temperature=target.temperature_for(request), seed=request.seed,
            stop=target.stops_for(request, MAX_STOP_SEQUENCES),
        )  # fmt: skip
        return self.openai_call(target, "raw", body)
