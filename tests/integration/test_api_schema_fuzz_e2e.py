"""The live gateway answers what its OpenAPI document says, whatever it is sent.

Schemathesis reads ``/openapi.json`` from the running gateway and sends every
operation requests generated from it, valid ones and invalid ones, with a valid
key: a tenant key (every scope a tenant key can have), then an admin key (which
also reaches ``/v1/keys`` and other tenants). No answer may be a 5xx, carry a
status the document does not list for the operation, or a body or header outside
the listed schema. Schemathesis also sends some invalid requests without the key,
on purpose: their ``401`` is checked the same way.

Besides the random workflow ids (404), some requests name workflows this test
started and saw end, so the bodies of real workflows (steps, usage, budget), a
cancel that comes too late (409) and whole event streams are checked too; and one
that waits at the model, started just before cancels are fuzzed, so a cancel that
takes (200) is checked as well.

The fuzzed workflows run for a tenant of this test's own (or, started with the
admin key, for tenants made up by the fuzzer), and their task carries
a marker the scripted LLM answers with a refusal, so each one fails at once and
costs the shared workers a call or two; whatever is still running at the end is
cancelled, and every key the fuzzer issued is revoked.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from redis.asyncio import Redis
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.client import GatewayClient
from tests.support.keys import bearer, issue
from tests.support.stack import RunningServices
from tributary_devstack.stack import Stack
from tributary_scripted_llm.server import ScriptedLLMServer
from tributary_shared.core.access import DEFAULT_SCOPES, Scope, parse_key
from tributary_shared.runtime.apikeys import RedisApiKeyStore

pytestmark = pytest.mark.integration

EXAMPLES = 40
"""Requests per operation and generation mode: enough to reach every documented answer."""
REQUEST_TIMEOUT_S = 30.0
STREAM_READ_TIMEOUT_S = 10.0
"""Below the stack's SSE ping interval (15 s): a stream that should have ended but idles
fails the run at its first quiet stretch instead of being kept open by the pings."""
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
STREAM_CHECKS = [c for c in CHECKS if c is not response_schema_conformance]
"""An event stream's body is SSE, which the document does not describe field by field."""
EVENTS_PATH = "/v1/workflows/{workflow_id}/events"
Operation = APIOperation[Any, Any, Any, Any]
FuzzCase = Case[Operation]
REACHED = {
    ("POST /v1/workflows", 202),
    ("GET /v1/workflows", 200),
    ("GET /v1/workflows/{workflow_id}", 200),
    ("POST /v1/workflows/{workflow_id}/cancel", 200),
    ("POST /v1/workflows/{workflow_id}/cancel", 409),
    ("GET /v1/workflows/{workflow_id}/events", 200),
    ("POST /v1/keys", 201),
    ("GET /v1/keys", 200),
}
"""Answers with real bodies the run must have checked, besides the errors."""


@dataclass
class Fuzzer:
    """Sends an operation's generated requests and keeps every failed check."""

    base_url: str
    key: str
    marker: str
    ended: list[str]
    waiting_task: str
    running: str = ""
    failures: list[str] = field(default_factory=list)
    started: set[str] = field(default_factory=set)
    issued_keys: set[str] = field(default_factory=set)
    answered: Counter[tuple[str, int]] = field(default_factory=Counter)

    def run(self, schema: schemathesis.BaseSchema) -> None:
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result.err()
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                self._fuzz(result.ok(), mode)

    def _fuzz(self, operation: Operation, mode: GenerationMode) -> None:
        if not self.running or operation.path.endswith("/cancel"):
            # Started now, so it still waits at the model when the first cancel names it
            # (200; later ones 409), however long the operations before took.
            self.running = self._start(f"Wait {self.waiting_task}")
        cases = st.tuples(
            operation.as_strategy(generation_mode=mode),
            st.sampled_from([None, self.running, *self.ended]),
        )

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            # Shrinking a failure would resend requests for minutes; the first one says enough.
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(cases)
        def send(drawn: tuple[FuzzCase, str | None]) -> None:
            case, workflow_id = drawn
            self._send(case, workflow_id)

        try:
            send()
        except Unsatisfiable:
            pass  # nothing of the operation to make invalid (no parameters, no body)
        except (Exception, FailureGroup) as failed:  # a FailureGroup is no Exception
            self.failures.append(f"{operation.label} ({mode.value}): {failed}")

    def _send(self, case: FuzzCase, workflow_id: str | None) -> None:
        is_stream = case.operation.path == EVENTS_PATH
        # A stream of a running workflow stays open: only ended ones are followed.
        followable = not is_stream or workflow_id in self.ended
        if workflow_id is not None and "workflow_id" in case.path_parameters and followable:
            case.path_parameters["workflow_id"] = workflow_id
            if is_stream and case.headers is not None:
                # From the start, so the stream ends at the workflow's terminal event;
                # a position past it would keep the stream open until its idle check.
                case.headers.pop("last-event-id", None)
        if case.operation.path == "/v1/workflows" and isinstance(case.body, dict):
            task = case.body.get("task")
            if isinstance(task, str):
                case.body["task"] = f"{task} {self.marker}"
        timeout = (REQUEST_TIMEOUT_S, STREAM_READ_TIMEOUT_S) if is_stream else REQUEST_TIMEOUT_S
        response = case.call(base_url=self.base_url, headers=bearer(self.key), timeout=timeout)
        self.answered[(case.operation.label, response.status_code)] += 1
        self._note(case, response)
        case.validate_response(
            response, checks=STREAM_CHECKS if is_stream else CHECKS, headers=bearer(self.key)
        )

    def _start(self, task: str) -> str:
        answer = httpx.post(
            f"{self.base_url}/v1/workflows",
            json={"task": task},
            headers=bearer(self.key),
            timeout=REQUEST_TIMEOUT_S,
        )
        assert answer.status_code == 202, answer.text
        workflow_id = str(answer.json()["workflow_id"])
        self.started.add(workflow_id)
        return workflow_id

    def _note(self, case: FuzzCase, response: schemathesis.Response) -> None:
        """What the run left behind, to clean up: workflows started, keys issued."""
        if case.method.upper() != "POST" or response.status_code not in (201, 202):
            return
        try:
            body: Any = response.json()
        except ValueError:
            return
        if not isinstance(body, dict):
            return
        if case.operation.path == "/v1/workflows" and "workflow_id" in body:
            self.started.add(str(body["workflow_id"]))
        if case.operation.path == "/v1/keys" and "key_id" in body:
            self.issued_keys.add(str(body["key_id"]))


@pytest.fixture
def refusing_model(llm: ScriptedLLMServer) -> Iterator[str]:
    """A marker whose workflows the scripted model refuses (HTTP 400): they fail at once."""
    marker = f"#fuzz-{uuid.uuid4().hex[:10]}"
    rule = llm.admin.add_rule(contains=marker, responses=[{"status": 400}])
    yield marker
    llm.admin.delete_rule(rule)


@pytest.fixture
def waiting_model(llm: ScriptedLLMServer) -> Iterator[str]:
    """A marker whose workflows wait at the model until they are cancelled."""
    marker = f"#fuzz-wait-{uuid.uuid4().hex[:10]}"
    rule = llm.admin.add_rule(contains=marker, responses=[{"hang": True}])
    yield marker
    llm.admin.delete_rule(rule)


async def test_live_gateway_conforms_to_its_openapi_document(
    stack: Stack, services: RunningServices, refusing_model: str, waiting_model: str
) -> None:
    started_at = time.monotonic()
    tenant = f"fuzz-{uuid.uuid4().hex[:8]}"
    redis = Redis.from_url(stack.config.redis_url)
    keys = RedisApiKeyStore(redis)
    tenant_key = await issue(keys, tenant, scopes=DEFAULT_SCOPES)
    admin_key = await issue(keys, tenant, scopes={Scope.ADMIN})
    base_url = services.gateway_url
    tenant_run = admin_run = None
    try:
        ended = await _ended_workflows(base_url, tenant_key, refusing_model)
        schema = await asyncio.to_thread(
            schemathesis.openapi.from_url, f"{base_url}/openapi.json", timeout=REQUEST_TIMEOUT_S
        )
        tenant_run = Fuzzer(base_url, tenant_key, refusing_model, ended, waiting_model)
        admin_run = Fuzzer(base_url, admin_key, refusing_model, ended, waiting_model)
        await asyncio.to_thread(tenant_run.run, schema)
        await asyncio.to_thread(admin_run.run, schema)
        failures = tenant_run.failures + admin_run.failures
        assert not failures, "\n\n".join(failures)
        answered = tenant_run.answered + admin_run.answered
        # The run reached the answers that carry real bodies, not only the errors.
        assert set(answered) >= REACHED, sorted(answered.items())
        print(
            f"schema fuzz: {answered.total()} requests in "
            f"{time.monotonic() - started_at:.0f} s: {sorted(answered.items())}"
        )
    finally:
        await _clean_up(base_url, admin_key, keys, tenant_run, admin_run)
        for key in (tenant_key, admin_key):
            presented = parse_key(key)
            assert presented is not None
            await keys.revoke(presented.key_id)
        await redis.aclose()


async def _ended_workflows(base_url: str, key: str, refused: str) -> list[str]:
    """Two workflows that have ended: one completed (with steps), one failed."""
    client = GatewayClient(base_url, key)
    try:
        completed = await client.start("Name a colour; name a fruit")
        failed = await client.start(f"Refused {refused}")
        await client.wait_for_status(completed, "completed", within=90)
        await client.wait_for_status(failed, "failed", within=90)
    finally:
        await client.aclose()
    return [completed, failed]


async def _clean_up(
    base_url: str,
    admin_key: str,
    keys: RedisApiKeyStore,
    *runs: Fuzzer | None,
) -> None:
    """Cancel the fuzzed workflows still running; revoke the keys the fuzzer issued."""
    async with httpx.AsyncClient(base_url=base_url, headers=bearer(admin_key), timeout=60) as http:
        for run in runs:
            if run is None:
                continue
            for workflow_id in sorted(run.started):
                cancelled = await http.post(f"/v1/workflows/{workflow_id}/cancel")
                assert cancelled.status_code in (200, 409), cancelled.text
            for key_id in sorted(run.issued_keys):
                await keys.revoke(key_id)
