"""Runs a suite's in-process tests over streamed LLM answers (``TRIBUTARY_LLM_STREAM``).

A module that imports a suite's tests and this fixture runs them again with every
scripted endpoint's clients streaming, and checks that they did: the endpoints
were asked, and only for streamed answers.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.scripted import ScriptedEndpoint

__all__ = ["every_llm_call_streamed"]


@pytest.fixture(autouse=True)
def every_llm_call_streamed(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    opened: list[ScriptedEndpoint] = []
    monkeypatch.setattr(ScriptedEndpoint, "stream", True)
    monkeypatch.setattr(ScriptedEndpoint, "opened", opened)
    yield
    asked = [request.stream for endpoint in opened for request in endpoint.requests]
    assert all(asked), "a request of the test was not streamed"
