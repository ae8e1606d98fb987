"""Redaction, pure: which secrets are masked, what is left alone, and that it is idempotent."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from tributary_shared.core import machine
from tributary_shared.core.events import (
    ErrorInfo,
    PlanCreated,
    PlannedStep,
    StepCompleted,
    StepFailed,
    StepInput,
    WorkflowFailed,
    WorkflowOptions,
    WorkflowRequested,
)
from tributary_shared.core.redaction import (
    DEFAULT_KEY_PREFIXES,
    REDACTED,
    Redactor,
    redact_event,
    redact_transition,
)

redact = Redactor()
TRB_KEY = "trb_0123456789ab_" + "A1b2C3d4E5" * 4


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Authorization headers, whatever the scheme; the scheme stays readable.
        ("Authorization: Basic dXNlcjpwYXNz", f"Authorization: Basic {REDACTED}"),
        ("authorization: bearer abc.def-ghi", f"authorization: bearer {REDACTED}"),
        ("Proxy-Authorization: Basic dXNlcjpwYXNz", f"Proxy-Authorization: Basic {REDACTED}"),
        ('{"Authorization": "Basic dXNlcjpwYXNz"}', f'{{"Authorization": "Basic {REDACTED}"}}'),
        (
            '{\\"authorization\\": \\"Basic dXNlcjpwYXNz\\"}',
            f'{{\\"authorization\\": \\"Basic {REDACTED}\\"}}',
        ),
        ("headers={'Authorization': 'abc123'}", f"headers={{'Authorization': '{REDACTED}'}}"),
        ("Authorization:\n  Basic dXNlcjpwYXNz", f"Authorization:\n  Basic {REDACTED}"),
        ("got Bearer eyJhbGciOiJIUzI1NiJ9.e30.x", f"got Bearer {REDACTED}"),
        # name=value and name: value, any name ending in a secret's word.
        ("password=hunter2&user=bob", f"password={REDACTED}&user=bob"),
        ("PASSWORD: hunter2", f"PASSWORD: {REDACTED}"),
        ("db_password=hunter2;", f"db_password={REDACTED};"),
        ("client_secret=abc123&grant_type=x", f"client_secret={REDACTED}&grant_type=x"),
        ('{"client_secret": "a b c"}', f'{{"client_secret": "{REDACTED}"}}'),
        ("{'refresh_token': 'r-1'}", f"{{'refresh_token': '{REDACTED}'}}"),
        ("X-Api-Key: 12345", f"X-Api-Key: {REDACTED}"),
        ("api_key=0123456789abcdef", f"api_key={REDACTED}"),
        ("secret_key=xyz, next", f"secret_key={REDACTED}, next"),
        ("GITHUB_TOKEN=abc", f"GITHUB_TOKEN={REDACTED}"),
        ("passphrase = correct horse", f"passphrase = {REDACTED} horse"),
        # Passwords in URLs; the user stays.
        ("redis://app:s3cr3t@redis:6379/0", f"redis://app:{REDACTED}@redis:6379/0"),
        ("rediss://:s3cr3t@redis:6380", f"rediss://:{REDACTED}@redis:6380"),
        ("postgres://u:p@ss@db/x", f"postgres://u:{REDACTED}@db/x"),
        ("see https://bob:pw@example.org/a?b=1", f"see https://bob:{REDACTED}@example.org/a?b=1"),
        ('"sasl_plain://kafka:pw@broker:9093"', f'"sasl_plain://kafka:{REDACTED}@broker:9093"'),
        # Keys by prefix.
        ("the key sk-proj-abcdefgh1234 leaked", f"the key sk-{REDACTED} leaked"),
        (f"revoked {TRB_KEY}.", f"revoked trb_{REDACTED}."),
        ("sk_live_0123456789abcdef", f"sk_live_{REDACTED}"),
        ("ghp_0123456789abcdefABCDEF", f"ghp_{REDACTED}"),
        ("AKIAIOSFODNN7EXAMPLE", f"AKIA{REDACTED}"),
        ("x=AIzaSyA1234567890abcdefg", f"x=AIza{REDACTED}"),
        ("https://ghp_0123456789abcdef@github.com/x", f"https://ghp_{REDACTED}@github.com/x"),
    ],
)
def test_secrets_are_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "What is 6 * 7? The answer is 42.",
        "scikit-learn: sk-learn, risk-assessment, desk_reservation, task-sk",
        "prompt_tokens: 12 completion_tokens=4 max_tokens=100 token_budget=5",
        "Bearer of bad news",
        "Basic information about the basics",
        "https://example.org:8443/path?q=a@b#frag",
        "mail bob@example.org or see mailto:bob@example.org",
        "wf_0123456789abcdef0123456789abcdef s1 tributary-agent-runner",
        "a password is needed; the token was refused",
        '<untrusted_data source="tool fetch_url">x</untrusted_data>',
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact(text) == text


def test_the_key_prefixes_are_configurable() -> None:
    text = f"acme_0123456789 and {TRB_KEY} and sk-0123456789abcdef"
    assert Redactor(["acme_"])(text) == f"acme_{REDACTED} and {TRB_KEY} and sk-0123456789abcdef"
    assert Redactor([])(text) == text
    assert "trb_" in DEFAULT_KEY_PREFIXES
    assert "sk-" in DEFAULT_KEY_PREFIXES


def test_json_values_are_redacted_through_and_through() -> None:
    detail = [
        {"loc": ["body", "task"], "input": {"password": "hunter2", "n": 1}, "msg": "sk-0123456789"},
        {"input": {"Authorization": "Basic abc", "db_password": 1234, "nested": ["token=x"]}},
    ]
    assert redact.json(detail) == [
        {"loc": ["body", "task"], "input": {"password": REDACTED, "n": 1}, "msg": f"sk-{REDACTED}"},
        {
            "input": {
                "Authorization": REDACTED,
                "db_password": REDACTED,
                "nested": [f"token={REDACTED}"],
            }
        },
    ]


# -- properties ------------------------------------------------------------------------------

FRAGMENTS = st.sampled_from(
    [
        "Authorization",
        ":",
        "=",
        " ",
        "\n",
        '"',
        "'",
        "\\",
        "Basic ",
        "Bearer ",
        "password",
        "client_secret",
        "token",
        "api-key",
        "://",
        "@",
        "/",
        "redis",
        "user",
        "sk-",
        "trb_",
        "AKIA",
        REDACTED,
        "[",
        "]",
        ",",
        ";",
        "&",
        "}",
        "0123456789",
        "abcdefgh",
    ]
)
TEXT = st.lists(FRAGMENTS | st.text(max_size=8), max_size=30).map("".join)
SECRET = st.text(
    alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789",
    min_size=12,
    max_size=40,
)
NOISE = st.text(alphabet=" .,;!?()\n-", max_size=10)
TEMPLATES = st.sampled_from(
    [
        "Authorization: Basic {}",
        "Authorization: Bearer {}",
        "authorization={}",
        "Bearer {}",
        "password={}",
        '"client_secret": "{}"',
        "X-Api-Key: {}",
        "redis://user:{}@host:6379/0",
        "https://:{}@host/",
        "sk-{}",
        "trb_0123456789ab_{}",
        "ghp_{}",
    ]
)


@given(TEXT)
def test_redacting_is_idempotent(text: str) -> None:
    once = redact(text)
    assert redact(once) == once


@given(NOISE, TEMPLATES, SECRET, NOISE)
def test_a_secret_in_any_of_its_forms_never_survives(
    before: str, template: str, secret: str, after: str
) -> None:
    text = f"{before} {template.format(secret)} {after}"
    assert secret not in redact(text)


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789 .,!?\n()*+-", max_size=200))
def test_text_without_credentials_is_unchanged(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "a_" * 50_000,
        "a.b-" * 25_000,
        "x://" + "a:" * 50_000,
        "password=" * 10_000,
        'password: "' + "a" * 100_000,
        "authorization: " + "a " * 50_000,
        "bearer " * 15_000,
    ],
)
def test_redacting_takes_time_in_proportion_to_the_text(text: str) -> None:
    """A page an agent quotes may be built to make a pattern backtrack: 100 KB of it
    takes milliseconds, where a quadratic pattern would take minutes."""
    started = time.perf_counter()
    redact(text)
    assert time.perf_counter() - started < 5.0


# -- events -------------------------------------------------------------------------------------


def test_events_lose_the_secrets_of_their_free_text_and_keep_every_id() -> None:
    key = "sk-0123456789abcdef"
    request = WorkflowRequested(
        workflow_id="wf_1",
        tenant_id="sk-tenant-named-like-a-key",
        task=f"use {key}",
        options=WorkflowOptions(
            metadata={"note": "password=hunter2", "api_key": "abc", "ref": "plain"}
        ),
    )
    redacted = redact_event(request, redact)
    assert redacted.task == f"use sk-{REDACTED}"
    assert redacted.options.metadata == {
        "note": f"password={REDACTED}",
        "api_key": REDACTED,
        "ref": "plain",
    }
    assert (redacted.event_id, redacted.workflow_id, redacted.tenant_id) == (
        request.event_id,
        request.workflow_id,
        request.tenant_id,
    )
    plain = WorkflowRequested(workflow_id="wf_2", task="nothing to hide")
    assert redact_event(plain, redact) is plain

    failed = StepFailed(
        workflow_id="wf_1",
        step_id="s1",
        error=ErrorInfo(
            code="llm_unavailable", message="redis://u:pw@h refused", error_class="transient"
        ),
    )
    assert redact_event(failed, redact).error.message == f"redis://u:{REDACTED}@h refused"
    plan = PlanCreated(
        workflow_id="wf_1",
        steps=(PlannedStep(step_id="s1", index=0, title="t", instruction=f"call with {key}"),),
    )
    assert redact_event(plan, redact).steps[0].instruction == f"call with sk-{REDACTED}"


def test_a_transition_writes_nothing_secret() -> None:
    done = StepCompleted(
        workflow_id="wf_1", step_id="s1", result="the page said password=hunter2", iterations=1
    )
    transition = redact_transition(machine.finish_step(done, owner="r"), redact)
    assert transition.step is not None
    assert transition.step.outcome is not None
    assert isinstance(transition.step.outcome, StepCompleted)
    assert transition.step.outcome.result == f"the page said password={REDACTED}"
    assert transition.events == (transition.step.outcome,)
    assert transition.step.owner == ""
    assert transition.fence == "r"

    failed = WorkflowFailed(
        workflow_id="wf_1",
        error=ErrorInfo(code="x", message="Authorization: Basic abc", error_class="fatal"),
    )
    written = redact_transition(machine.fail(failed), redact)
    assert isinstance(written.final, WorkflowFailed)
    assert written.final.error.message == f"Authorization: Basic {REDACTED}"

    inputs = (StepInput(step_id="s1", title="t", result="token=abc"),)
    assert redact_event(inputs[0], redact).result == f"token={REDACTED}"


class CountingRedactor(Redactor):
    """Counts the strings it is asked to redact."""

    __slots__ = ("texts",)

    def __init__(self) -> None:
        super().__init__()
        self.texts = 0

    def __call__(self, text: str) -> str:
        self.texts += 1
        return super().__call__(text)


def test_an_event_already_redacted_is_not_walked_again() -> None:
    # The store, the publisher and the call recorder each redact the same event:
    # only the first walks its text.
    counting = CountingRedactor()
    request = WorkflowRequested(workflow_id="wf_1", task="use sk-0123456789abcdef")
    redacted = redact_event(request, counting)
    walked = counting.texts
    assert walked > 0
    assert redact_event(redacted, counting) is redacted
    plain = WorkflowRequested(workflow_id="wf_2", task="nothing to hide")
    assert redact_event(plain, counting) is plain
    walked_plain = counting.texts
    assert redact_event(plain, counting) is plain
    assert counting.texts == walked_plain
    # Another redactor (other key prefixes) does its own walk.
    other = CountingRedactor()
    redact_event(redacted, other)
    assert other.texts > 0


def test_a_model_that_can_change_is_redacted_every_time() -> None:
    class Note(BaseModel):
        message: str

    counting = CountingRedactor()
    note = Note(message="plain")
    redact_event(note, counting)
    note.message = "password=hunter2"
    assert redact_event(note, counting).message == f"password={REDACTED}"
