"""Typed client for the scripted LLM's ``/_admin`` API.

It is synchronous on purpose: tests script the server between steps, and the server
runs in its own thread (or process), so a short blocking call never stalls it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any, Self

import httpx
from pydantic import TypeAdapter

from .models import (
    ConfigUpdate,
    Match,
    RecordedRequest,
    Rule,
    RuleStatus,
    ScriptedResponse,
    ServerConfig,
)
from .ratelimit import RateLimitStats

_RECORDS = TypeAdapter(list[RecordedRequest])
_RULES = TypeAdapter(list[RuleStatus])


class AdminError(RuntimeError):
    """The admin API answered with an error status."""

    def __init__(self, status_code: int, message: str) -> None:
        super().__init__(f"scripted LLM admin error {status_code}: {message}")
        self.status_code = status_code


def server_root(base_url: str) -> str:
    """Accept either the server root or the OpenAI base URL (ending in ``/v1``)."""
    root = base_url.rstrip("/")
    return root.removesuffix("/v1")


class ScriptedLLMAdmin:
    """Scripts a running scripted LLM server: ``ScriptedLLMAdmin(llm.base_url)``."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self._client = httpx.Client(base_url=server_root(base_url), timeout=timeout)

    def add_rule(
        self,
        rule: Rule | Mapping[str, Any] | None = None,
        *,
        contains: str | None = None,
        last_user_contains: str | None = None,
        model: str | None = None,
        has_tools: bool | None = None,
        has_tool_result: bool | None = None,
        schema_name: str | None = None,
        responses: Sequence[ScriptedResponse | Mapping[str, Any]] = (),
        repeat_last: bool = True,
        rule_id: str | None = None,
    ) -> str:
        """Add a rule after the existing ones and return its id.

        Pass a complete ``rule`` (model or dict), or describe it with the keywords::

            admin.add_rule(contains="#m1", responses=[{"status": 429}, {"content": "ok"}])
        """
        if rule is None:
            rule = Rule(
                id=rule_id,
                match=Match(
                    contains=contains,
                    last_user_contains=last_user_contains,
                    model=model,
                    has_tools=has_tools,
                    has_tool_result=has_tool_result,
                    schema_name=schema_name,
                ),
                responses=[
                    r if isinstance(r, ScriptedResponse) else ScriptedResponse.model_validate(r)
                    for r in responses
                ],
                repeat_last=repeat_last,
            )
        elif not isinstance(rule, Rule):
            rule = Rule.model_validate(rule)
        payload = rule.model_dump(mode="json", exclude_unset=True)
        rule_id_out: str = self._call("POST", "/_admin/rules", json=payload)["id"]
        return rule_id_out

    def rules(self) -> list[RuleStatus]:
        return _RULES.validate_python(self._call("GET", "/_admin/rules"))

    def delete_rule(self, rule_id: str) -> None:
        self._call("DELETE", f"/_admin/rules/{rule_id}")

    def clear_rules(self) -> None:
        self._call("DELETE", "/_admin/rules")

    def requests(
        self, *, contains: str | None = None, rule_id: str | None = None
    ) -> list[RecordedRequest]:
        """Recorded chat requests, oldest first; optionally only those whose messages
        contain ``contains`` or that ``rule_id`` answered."""
        params = {
            key: value
            for key, value in (("contains", contains), ("rule_id", rule_id))
            if value is not None
        }
        return _RECORDS.validate_python(self._call("GET", "/_admin/requests", params=params))

    def clear_requests(self) -> None:
        self._call("DELETE", "/_admin/requests")

    def config(self) -> ServerConfig:
        return ServerConfig.model_validate(self._call("GET", "/_admin/config"))

    def set_config(
        self,
        *,
        latency_ms: int | None = None,
        max_recorded_requests: int | None = None,
        models: Sequence[str] | None = None,
    ) -> ServerConfig:
        update = ConfigUpdate(
            latency_ms=latency_ms,
            max_recorded_requests=max_recorded_requests,
            models=list(models) if models is not None else None,
        )
        payload = update.model_dump(exclude_none=True)
        return ServerConfig.model_validate(self._call("POST", "/_admin/config", json=payload))

    def set_rate_limit(self, requests_per_minute: int, *, burst: int = 0) -> None:
        """Accept ``requests_per_minute`` chat completions a minute, at most ``burst`` at
        once (0: the minute's limit), and answer 429 beyond; 0 lifts the limit. Starts
        afresh: a full bucket, counts at zero."""
        self._call(
            "POST",
            "/_admin/config",
            json={"rate_limit_rpm": requests_per_minute, "rate_limit_burst": burst},
        )

    def rate_limit(self) -> RateLimitStats:
        """Requests the limit allowed and refused since it was set."""
        return RateLimitStats.model_validate(self._call("GET", "/_admin/rate-limit"))

    def set_latency(self, ms: int) -> None:
        """Delay every chat completion answer by ``ms`` milliseconds."""
        self.set_config(latency_ms=ms)

    def reset(self) -> None:
        """Drop all rules and recorded requests and restore the start-up config."""
        self._call("POST", "/_admin/reset")

    def health(self) -> bool:
        try:
            return bool(self._call("GET", "/health").get("status") == "ok")
        except (httpx.HTTPError, AdminError):
            return False

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._client.request(method, path, **kwargs)
        if response.is_error:
            try:
                message = str(response.json()["error"]["message"])
            except (ValueError, KeyError, TypeError):
                message = response.text
            raise AdminError(response.status_code, message)
        return response.json()

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
