from __future__ import annotations

from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import SettingsConfigDict

from tributary_shared.core.netguard import address_and_port
from tributary_shared.runtime.settings import TributarySettings


class AgentSettings(TributarySettings):
    model_config = SettingsConfigDict(env_prefix="TRIBUTARY_AGENT_", extra="ignore", frozen=True)

    max_iterations: int = Field(
        default=8,
        ge=1,
        le=100,
        description="LLM calls one agent step may make (each may call tools) before it fails "
        "with `iteration_limit`. Raise it for steps that need many tool calls; lower it to cap "
        "the cost of a step.",
    )
    loop_repeat_limit: int = Field(
        default=3,
        ge=2,
        le=20,
        description="Times one tool call (same name and arguments) may occur in a step before "
        "the step is stopped as a loop (`loop_detected`). Raise it if a tool is meant to be "
        "polled with the same arguments.",
    )
    step_lease_s: float = Field(
        default=30.0,
        ge=1.0,
        le=3600.0,
        description="Seconds a runner's lease on a step lasts; it is renewed every third of "
        "that while the step runs. A step whose runner died is taken over by the next delivery "
        "once the lease lapses, so a shorter lease recovers sooner but renews more often.",
    )
    status_recheck_s: float = Field(
        default=1.0,
        ge=0.0,
        le=60.0,
        description="Before each LLM call a step makes sure its workflow still runs: the "
        "deadline is checked every time, the workflow's status is read again from Redis when "
        "it was last seen running longer ago than this. A workflow that is cancelled, fails or "
        "times out also stops its running steps at once through the cancellation signal, so "
        "this only bounds how late a step notices when that signal is lost. 0: read before "
        "every call.",
    )
    tool_timeouts: dict[str, Annotated[float, Field(gt=0, le=3600)]] = Field(
        default_factory=dict,
        description="Seconds a call of the named tool may run before it is stopped and the "
        'model is told it timed out, as JSON, e.g. `{"fetch_url": 40, "files__read_file": 10}` '
        "(MCP tools by their offered name `<server>__<tool>`). Every tool has a timeout; "
        "a tool not named here keeps its own: `calculator` 2 s, `fetch_url` 25 s, `web_search` "
        "its `TRIBUTARY_WEB_SEARCH_TIMEOUT_S` plus 5 s, an MCP tool its server's `timeout_s` "
        "plus 5 s. A timed-out call is abandoned at once even if it ignores cancellation.",
    )
    tool_worker_processes: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Worker processes for CPU-heavy tool work (turning fetched HTML into "
        "text), so that it never runs on the event loop. Each runs one conversion at a time; "
        "more conversions wait for a free process. Started when first needed.",
    )
    html_to_text_timeout_s: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="Seconds one HTML page may take to turn into text in a worker process; "
        "past it the process is killed and replaced and `fetch_url` returns an error to the "
        "model. Pages are cut to 2 MiB of HTML before conversion (about 5 s at worst).",
    )
    fetch_url_allowed_targets: tuple[str, ...] = Field(
        default=(),
        description="Non-public addresses `fetch_url` may reach after all (loopback, private, "
        "link-local, ...), as a JSON list of `address:port`, e.g. "
        '`["10.0.0.5:8080", "[fd00::5]:443"]`: exactly that address and port, nothing else of '
        "its range. IP addresses only, not names (what a name resolves to can change). Empty: "
        "public addresses only. Any URL a model chooses, or a page it read suggests, can reach "
        "what is listed, so list only services that are safe for anyone to call.",
    )

    @field_validator("fetch_url_allowed_targets")
    @classmethod
    def _addresses_and_ports(cls, targets: tuple[str, ...]) -> tuple[str, ...]:
        for target in targets:
            address_and_port(target)
        return targets
