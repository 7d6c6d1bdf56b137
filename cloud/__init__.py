"""The cloud LLM endpoint: OpenAI-compatible completions over HTTP with auth and limits.

Installed with the ``cloud`` extra. Engines: embedded llama.cpp (default) or an
upstream OpenAI-compatible server.
"""

from cloud.app import build_engine, create_app
from cloud.engine import Delta, Engine, Generation
from cloud.settings import CloudSettings

__all__ = ["CloudSettings", "Delta", "Engine", "Generation", "build_engine", "create_app"]
