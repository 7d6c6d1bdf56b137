"""Loopback emulators of hosted LLM APIs, written from each provider's published reference.

Hosted APIs cannot be reached from the test machine, so each emulator answers
as its provider documents: the request fields it takes and the ones it refuses
(with the provider's error bodies and statuses), its streaming events, its
usage. Their "model" is :class:`tests.emulators.scripted.Script`: it continues
texts it knows and answers anything else anew, deterministically.
"""
