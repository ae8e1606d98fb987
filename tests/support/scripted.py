"""The scripted LLM server in-process: the real SDK over an ASGI transport, no socket."""

from __future__ import annotations

from typing import Any

import httpx2
from pydantic import SecretStr

from tributary_scripted_llm import RecordedRequest, Rule, create_app
from tributary_shared.runtime.llm import LLMClient
from tributary_shared.runtime.settings import LLMSettings

PLAN_FORMAT = "tributary_plan"


class ScriptedEndpoint:
    """The scripted LLM server as an in-process ASGI app, with what it recorded."""

    def __init__(self, *rules: Rule) -> None:
        self.app = create_app(rules=rules)
        self.http = httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=self.app), base_url="http://scripted-llm"
        )

    @property
    def requests(self) -> list[RecordedRequest]:
        return list(self.app.state.scripted.recorded)

    @property
    def models(self) -> list[str]:
        return [request.model for request in self.requests]

    def settings(self, **overrides: object) -> LLMSettings:
        return LLMSettings.model_validate(
            {
                "TRIBUTARY_LLM_BASE_URL": "http://scripted-llm/v1",
                "TRIBUTARY_LLM_API_KEY": SecretStr("test-key"),
                "TRIBUTARY_LLM_MAX_ATTEMPTS": 3,
                "TRIBUTARY_LLM_MAX_BACKOFF_S": 0.01,
                **overrides,
            }
        )

    def client(self, **overrides: object) -> LLMClient:
        return LLMClient(self.settings(**overrides), http_client=self.http)

    def add_rule(self, rule: Rule) -> None:
        self.app.state.scripted.rules.add(rule)

    # -- what the endpoint saw, by caller ----------------------------------------------

    def planner_calls(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.response_format == PLAN_FORMAT]

    def agent_calls(self, step_title: str | None = None) -> list[RecordedRequest]:
        calls = [r for r in self.requests if r.tools]
        if step_title is None:
            return calls
        return [r for r in calls if any(_says(m, f"Your step: {step_title}\n") for m in r.messages)]

    def synthesis_calls(self) -> list[RecordedRequest]:
        return [r for r in self.requests if not r.tools and r.response_format is None]

    async def aclose(self) -> None:
        await self.http.aclose()


def _says(message: dict[str, Any], text: str) -> bool:
    content = message.get("content")
    return isinstance(content, str) and text in content


def rule(*responses: dict[str, Any], **match: Any) -> Rule:
    """A rule answering requests that match ``match`` with ``responses`` in turn."""
    return Rule.model_validate({"match": match, "responses": list(responses)})
