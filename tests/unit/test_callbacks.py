"""Workflow callbacks, the pure rules and one try's HTTP: what a receiver relies on.

The signature verifies with the recipe docs/api.md gives (copied below as receivers
would run it) and fails for another body, secret or a stale time; the answers that
retry, deliver or give up; the backoff; the URLs refused by form; and the sender,
which posts only to public addresses (as ``fetch_url`` fetches), pins the address it
checked, and follows no redirect.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from datetime import UTC, datetime
from ipaddress import ip_address

import httpx
import pytest

from tributary_shared.core.callback_urls import check_callback_url
from tributary_shared.core.callbacks import (
    Verdict,
    callback_body,
    delivery_id_of,
    retry_delay_s,
    signature_header,
    verdict_of,
    verify_signature,
)
from tributary_shared.core.events import ErrorInfo, TokenUsage, WorkflowOptions
from tributary_shared.core.netguard import IPAddress, allow_exact
from tributary_shared.core.records import WorkflowRecord
from tributary_shared.core.status import WorkflowStatus
from tributary_shared.runtime.callbacks.sender import CallbackSender

SECRET = b"whsec-test"


# --- the documented recipe, as a receiver runs it (keep in step with docs/api.md) ---------


def verify(secret: bytes, header: str, body: bytes, tolerance_s: int = 300) -> bool:
    fields = dict(item.split("=", 1) for item in header.split(","))
    timestamp = int(fields["t"])
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    signed = f"{timestamp}.".encode() + body
    expected = hmac.new(secret, signed, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, fields["v1"])


def test_a_signature_verifies_with_the_documented_recipe() -> None:
    body = b'{"workflow_id":"wf_1","status":"completed"}'
    header = signature_header(SECRET, int(time.time()), body)
    assert verify(SECRET, header, body)
    assert verify_signature(SECRET, header, body, now=time.time())


@pytest.mark.parametrize(
    ("secret", "body", "age_s"),
    [
        (b"another-secret", b"{}", 0),
        (SECRET, b'{"status":"failed"}', 0),  # the body changed on the way
        (SECRET, b"{}", 600),  # replayed long after
    ],
    ids=["other secret", "other body", "stale"],
)
def test_a_signature_fails_for_another_secret_body_or_a_stale_time(
    secret: bytes, body: bytes, age_s: int
) -> None:
    header = signature_header(SECRET, int(time.time()) - age_s, b"{}")
    assert not verify(secret, header, body)
    assert not verify_signature(secret, header, body, now=time.time())


def test_the_timestamp_is_signed_so_it_cannot_be_moved() -> None:
    body = b"{}"
    old = int(time.time()) - 3600
    header = signature_header(SECRET, old, body)
    moved = header.replace(f"t={old}", f"t={int(time.time())}")
    assert not verify(SECRET, moved, body)


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (200, Verdict.DELIVERED),
        (204, Verdict.DELIVERED),
        (500, Verdict.RETRY),
        (503, Verdict.RETRY),
        (408, Verdict.RETRY),
        (429, Verdict.RETRY),
        (None, Verdict.RETRY),  # a timeout or a refused connection
        (400, Verdict.GIVE_UP),
        (404, Verdict.GIVE_UP),
        (410, Verdict.GIVE_UP),
        (301, Verdict.GIVE_UP),  # redirects are not followed
    ],
)
def test_what_an_answer_means(status: int | None, verdict: Verdict) -> None:
    assert verdict_of(status) is verdict


def test_the_backoff_doubles_up_to_its_cap() -> None:
    delays = [retry_delay_s(n, base_s=5, max_s=60) for n in range(1, 7)]
    assert delays == [5, 10, 20, 40, 60, 60]
    assert retry_delay_s(10_000, base_s=5, max_s=60) == 60
    with pytest.raises(ValueError, match="after a failed try"):
        retry_delay_s(0, base_s=5, max_s=60)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://hooks.example/cb", "https://"),
        ("http://hooks.example/cb", "http:// is not allowed"),
        ("https://user:pw@hooks.example/cb", "user name or password"),
        ("https://user@hooks.example/cb", "user name or password"),
        ("https:///cb", "no host"),
        ("https://hooks.example:99999/cb", "not a valid URL"),
        ("https://hooks.example/c b", "white space"),
        ("https://hooks.example/" + "a" * 2048, "longer than 2048"),
    ],
)
def test_callback_urls_of_the_wrong_form_are_refused(url: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        check_callback_url(url)


def test_http_is_accepted_only_where_allowed() -> None:
    assert check_callback_url("http://127.0.0.1:8080/cb", allow_http=True)
    assert check_callback_url("https://hooks.example/cb?tenant=a")


def test_the_request_checks_the_form_of_its_callback_url() -> None:
    with pytest.raises(ValueError, match="user name or password"):
        WorkflowOptions(callback_url="https://u:p@hooks.example/")


def _ended(**fields: object) -> WorkflowRecord:
    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    base: dict[str, object] = {
        "workflow_id": "wf_1",
        "tenant_id": "acme",
        "status": WorkflowStatus.COMPLETED,
        "task": "a task that is not sent back",
        "created_at": now,
        "updated_at": now,
        "result": "42",
        "usage": TokenUsage(prompt_tokens=3, completion_tokens=4),
        "options": WorkflowOptions(callback_url="https://hooks.example/", metadata={"o": "1"}),
    }
    return WorkflowRecord.model_validate({**base, **fields})


def test_the_body_holds_the_outcome_and_no_more() -> None:
    body = json.loads(callback_body(_ended(), delivery_id="cb_1"))
    assert body == {
        "delivery_id": "cb_1",
        "workflow_id": "wf_1",
        "tenant_id": "acme",
        "status": "completed",
        "created_at": "2026-01-02T03:04:05+00:00",
        "ended_at": "2026-01-02T03:04:05+00:00",
        "result": "42",
        "partial": False,
        "error": None,
        "usage": {"prompt_tokens": 3, "completion_tokens": 4},
        "metadata": {"o": "1"},
    }
    error = ErrorInfo(code="llm_unavailable", message="down", error_class="transient")
    failed = json.loads(
        callback_body(
            _ended(status=WorkflowStatus.FAILED, result=None, error=error), delivery_id="x"
        )
    )
    assert failed["status"] == "failed"
    assert failed["error"]["code"] == "llm_unavailable"


def test_the_delivery_id_is_one_per_workflow() -> None:
    assert delivery_id_of("wf_1") == delivery_id_of("wf_1") != delivery_id_of("wf_2")


# --- one try over HTTP ------------------------------------------------------------------


class Receiver:
    def __init__(self, *statuses: int, headers: dict[str, str] | None = None) -> None:
        self.statuses = list(statuses)
        self.headers = headers or {}
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.statuses.pop(0) if self.statuses else 200, headers=self.headers)


def resolving_to(*addresses: str):  # type: ignore[no-untyped-def]
    async def resolve(host: str, port: int) -> list[IPAddress]:
        return [ip_address(a) for a in addresses]

    return resolve


async def test_a_try_posts_the_signed_body_to_the_address_it_checked() -> None:
    receiver = Receiver(204)
    sender = CallbackSender(
        timeout_s=5,
        resolver=resolving_to("93.184.216.34"),
        transport=httpx.MockTransport(receiver),
    )
    body = b'{"status":"completed"}'
    result = await sender.send(
        "https://hooks.example/cb?x=1", body, secret=SECRET, delivery_id="cb_7"
    )
    assert (result.status, result.error, result.refused) == (204, None, False)
    [request] = receiver.requests
    assert request.method == "POST"
    assert request.url.host == "93.184.216.34"  # pinned: no second lookup can move it
    assert request.url.path == "/cb"
    assert request.url.query == b"x=1"
    assert request.headers["Host"] == "hooks.example"
    assert request.headers["Tributary-Delivery-Id"] == "cb_7"
    assert request.headers["Content-Type"] == "application/json"
    assert request.content == body
    assert verify(SECRET, request.headers["Tributary-Signature"], body)


@pytest.mark.parametrize(
    ("url", "addresses"),
    [
        ("https://127.0.0.1/cb", ()),
        ("https://169.254.169.254/latest/meta-data", ()),  # cloud metadata
        ("https://0x7f.1/cb", ()),
        ("https://[::ffff:10.0.0.1]/cb", ()),
        ("https://hooks.example/cb", ("10.1.2.3",)),
        ("https://hooks.example/cb", ("93.184.216.34", "192.168.0.5")),  # one bad answer
    ],
)
async def test_private_loopback_and_metadata_targets_are_refused_unsent(
    url: str, addresses: tuple[str, ...]
) -> None:
    receiver = Receiver()
    sender = CallbackSender(
        timeout_s=5, resolver=resolving_to(*addresses), transport=httpx.MockTransport(receiver)
    )
    result = await sender.send(url, b"{}", secret=SECRET, delivery_id="cb_1")
    assert result.refused
    assert result.status is None
    assert result.error is not None
    assert "refused" in result.error
    assert receiver.requests == []


async def test_an_allow_listed_address_and_port_may_be_reached_and_no_other() -> None:
    receiver = Receiver(200)
    sender = CallbackSender(
        timeout_s=5,
        policy=allow_exact(("127.0.0.1", 8099)),
        transport=httpx.MockTransport(receiver),
    )
    allowed = await sender.send("http://127.0.0.1:8099/", b"{}", secret=SECRET, delivery_id="c")
    other = await sender.send("http://127.0.0.1:8100/", b"{}", secret=SECRET, delivery_id="c")
    assert allowed.status == 200
    assert other.refused
    assert len(receiver.requests) == 1


async def test_a_redirect_is_an_answer_not_followed() -> None:
    receiver = Receiver(302, headers={"Location": "https://127.0.0.1/"})
    sender = CallbackSender(
        timeout_s=5, resolver=resolving_to("93.184.216.34"), transport=httpx.MockTransport(receiver)
    )
    result = await sender.send("https://hooks.example/", b"{}", secret=SECRET, delivery_id="c")
    assert result.status == 302
    assert verdict_of(result.status) is Verdict.GIVE_UP
    assert len(receiver.requests) == 1


async def test_no_answer_is_an_error_to_retry() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    sender = CallbackSender(
        timeout_s=5, resolver=resolving_to("93.184.216.34"), transport=httpx.MockTransport(refuse)
    )
    result = await sender.send("https://hooks.example/", b"{}", secret=SECRET, delivery_id="c")
    assert result.status is None
    assert not result.refused
    assert result.error == "request failed (ConnectError)"
    assert verdict_of(result.status) is Verdict.RETRY


async def test_a_name_that_does_not_resolve_now_is_tried_again_later() -> None:
    async def unresolvable(host: str, port: int) -> list[IPAddress]:
        raise OSError("no such name")

    sender = CallbackSender(timeout_s=5, resolver=unresolvable)
    result = await sender.send("https://hooks.example/", b"{}", secret=SECRET, delivery_id="c")
    assert result.status is None
    assert not result.refused
    assert result.error is not None
    assert "could not resolve" in result.error
