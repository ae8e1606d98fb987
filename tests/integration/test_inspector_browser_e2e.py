"""The web inspector in a real browser against the live stack.

Headless Chromium (Debian's package, driven by Playwright) opens the gateway's
``/ui`` through a proxy whose connections the test can cut, signs in from the URL
fragment, finds a new workflow in the list, and watches its page follow the
workflow live: the DAG's step states, the timeline, the final answer. A cut
connection resumes from the last event: the timeline ends up holding exactly the
workflow's log, each event once. The ask-human test answers an input request from
the page.

``make inspector-screenshots`` runs the first test with
``TRIBUTARY_INSPECTOR_SCREENSHOTS`` set, which saves the pages into docs/images.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, ViewportSize, expect

from tests.support.browser import chromium, screenshots_dir
from tests.support.client import GatewayClient
from tests.support.stack import RunningServices
from tests.support.tcp_proxy import CuttableProxy, cuttable_proxy
from tributary_scripted_llm import ScriptedLLMAdmin

pytestmark = pytest.mark.integration

# Generous: a loaded two-core machine runs the whole stack next to the browser.
WAIT_MS = 45_000
DESKTOP = ViewportSize(width=1366, height=768)
NARROW = ViewportSize(width=400, height=800)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as launched:
        yield launched


@pytest.fixture
async def proxy(services: RunningServices) -> AsyncIterator[CuttableProxy]:
    async with cuttable_proxy(services.gateway_url) as opened:
        yield opened


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(viewport=DESKTOP)
    opened = await context.new_page()
    yield opened
    await context.close()


async def _sign_in(page: Page, base_url: str, api_key: str) -> None:
    await page.goto(f"{base_url}/ui/#key={api_key}")
    await expect(page.get_by_role("heading", name="Workflows")).to_be_visible(timeout=WAIT_MS)
    # The key left the address bar and the history entry, and no cookie holds it.
    assert api_key not in page.url
    assert await page.context.cookies() == []
    assert await page.evaluate("sessionStorage.getItem('tributary.apiKey')") == api_key


async def _timeline_ids(page: Page) -> list[str]:
    ids: list[str] = await page.locator(".timeline li").evaluate_all(
        "items => items.map(item => item.dataset.eventId)"
    )
    return ids


async def _log_ids(gateway: GatewayClient, workflow_id: str) -> list[str]:
    return [event.id or "" for event in await gateway.follow(workflow_id)]


def _hold_steps(llm_admin: ScriptedLLMAdmin, marker: str) -> str:
    """The steps' model calls hang (each try until the LLM timeout) until the rule goes."""
    return llm_admin.add_rule(contains=marker, has_tools=True, responses=[{"hang": True}])


async def test_inspector_lists_and_follows_a_workflow_live(
    page: Page,
    proxy: CuttableProxy,
    gateway: GatewayClient,
    api_key: str,
    llm_admin: ScriptedLLMAdmin,
    marker: str,
) -> None:
    held = _hold_steps(llm_admin, marker)
    await _sign_in(page, proxy.url, api_key)

    workflow_id = await gateway.start(
        f"Name the longest river of Europe; convert 3530 km to miles; summarise it {marker}"
    )
    row = page.locator(f'tr[data-workflow-id="{workflow_id}"]')
    await expect(row).to_be_visible(timeout=WAIT_MS)
    await row.get_by_role("link", name=workflow_id).click()

    nodes = page.locator("svg.dag .node")
    await expect(nodes).to_have_count(3, timeout=WAIT_MS)
    # Live: a step is drawn running while the workflow runs, then the answer arrives
    # on the same page, without reloading it.
    await expect(page.locator('svg.dag .node[data-status="running"]').first).to_be_visible(
        timeout=WAIT_MS
    )
    assert await page.locator(".final-answer").count() == 0
    # Released: the calls' next tries get answers (within the LLM client's attempts).
    llm_admin.delete_rule(held)
    answer = page.locator(".final-answer")
    await expect(answer).to_be_visible(timeout=WAIT_MS)

    finished = await gateway.get(workflow_id)
    assert finished["status"] == "completed"
    await expect(answer).to_have_text(finished["result"])
    await expect(page.locator('svg.dag .node[data-status="completed"]')).to_have_count(3)
    await expect(page.locator("[data-stream-state]")).to_have_attribute(
        "data-stream-state", "ended"
    )
    assert await _timeline_ids(page) == await _log_ids(gateway, workflow_id)
    await expect(page.locator("#replay-command")).to_have_text(f"tributary replay {workflow_id}")
    # Each step shows the calls recorded for it, with the model that served them.
    await page.locator("details.step summary").first.click()
    call = page.locator("details.step[open] .call.llm").first
    await expect(call).to_be_visible()
    # Its first try hung until the client gave up: the retry and its error are shown.
    await expect(call.locator(".tries li").first).to_contain_text("try 1")

    if (folder := screenshots_dir()) is not None:
        await _screenshots(page, proxy.url, workflow_id, folder)


async def _screenshots(page: Page, base_url: str, workflow_id: str, folder: Path) -> None:
    await page.screenshot(path=str(folder / "inspector-workflow.png"), full_page=True)
    await page.set_viewport_size(NARROW)
    await page.evaluate("window.scrollTo(0, 0)")
    await page.screenshot(path=str(folder / "inspector-workflow-narrow.png"), full_page=False)
    await page.set_viewport_size(DESKTOP)
    await page.goto(f"{base_url}/ui/#/")
    await expect(page.locator(f'tr[data-workflow-id="{workflow_id}"]')).to_be_visible()
    await page.screenshot(path=str(folder / "inspector-list.png"))


async def test_inspector_refuses_a_bad_key_and_signs_in_from_the_keyboard(
    page: Page, proxy: CuttableProxy, api_key: str
) -> None:
    await page.goto(f"{proxy.url}/ui/#key=trb_000000000000_{'x' * 40}")
    await expect(page.get_by_role("alert")).to_contain_text("refused", timeout=WAIT_MS)
    assert await page.evaluate("sessionStorage.getItem('tributary.apiKey')") is None
    # By keyboard alone: focus the field, type the key, Enter submits.
    await page.get_by_label("API key").focus()
    await page.keyboard.type(api_key)
    await page.keyboard.press("Enter")
    await expect(page.get_by_role("heading", name="Workflows")).to_be_visible(timeout=WAIT_MS)
    assert api_key not in page.url
    assert await page.context.cookies() == []


@pytest.mark.parametrize("reader", ["event-source", "fetch"])
async def test_inspector_resumes_a_dropped_stream_without_missing_or_repeating(
    page: Page,
    proxy: CuttableProxy,
    gateway: GatewayClient,
    api_key: str,
    llm_admin: ScriptedLLMAdmin,
    marker: str,
    reader: str,
) -> None:
    """Both ways of reading the stream: an ``EventSource`` on a stream token, and the
    ``fetch()`` reader a gateway without the token route gets (its 404 faked here)."""
    if reader == "fetch":
        await page.route(
            "**/stream-token",
            lambda route: route.fulfill(status=404, json={"detail": "Not Found"}),
        )
    held = _hold_steps(llm_admin, marker)
    await _sign_in(page, proxy.url, api_key)
    workflow_id = await gateway.start(f"Outline the plan; check it; summarise it {marker}")
    await page.goto(f"{proxy.url}/ui/#/workflows/{workflow_id}")
    await expect(page.locator('.timeline li[data-event-type="step.started"]').first).to_be_visible(
        timeout=WAIT_MS
    )
    seen_before_cut = await _timeline_ids(page)
    requests_before_cut = len(proxy.requests)

    proxy.cut()  # every connection, the event stream's among them, reset mid-body
    await expect(page.locator('[data-stream-state="reconnecting"]')).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator('[data-stream-state="live"]')).to_be_visible(timeout=WAIT_MS)
    llm_admin.delete_rule(held)  # the workflow goes on only once the stream is back
    await expect(page.locator(".final-answer")).to_be_visible(timeout=WAIT_MS)

    log = await _log_ids(gateway, workflow_id)
    shown = await _timeline_ids(page)
    assert shown == log, "the timeline must hold every logged event exactly once, in order"
    assert len(log) > len(seen_before_cut)
    # It resumed from where it was: the reconnection asked for the events after the
    # last one it had, rather than the whole log again.
    after_cut = proxy.requests[requests_before_cut:]
    resumed_from = _last_event_ids(after_cut, workflow_id)
    assert resumed_from, "no reconnection of the event stream sent Last-Event-ID"
    with_token = [chunk for chunk in after_cut if b"/events?token=" in chunk]
    assert bool(with_token) == (reader == "event-source")
    assert resumed_from[0] in log
    assert log.index(resumed_from[0]) >= len(seen_before_cut) - 1


def _last_event_ids(chunks: list[bytes], workflow_id: str) -> list[str]:
    """The ``Last-Event-ID`` of each request for the workflow's event stream."""
    found: list[str] = []
    for chunk in chunks:
        text = chunk.decode("latin-1")
        if f"/v1/workflows/{workflow_id}/events" not in text.split("\r\n", 1)[0]:
            continue
        for line in text.split("\r\n"):
            name, _, value = line.partition(":")
            if name.strip().lower() == "last-event-id":
                found.append(value.strip())
    return found


async def test_inspector_answers_a_human_input_request(
    page: Page,
    proxy: CuttableProxy,
    gateway: GatewayClient,
    api_key: str,
    llm_admin: ScriptedLLMAdmin,
    marker: str,
) -> None:
    """An agent's ``ask_human`` question shows as a form; its answer resumes the step."""
    llm_admin.add_rule(
        contains=marker, has_tool_result=True, responses=[{"content": "The operator said blue."}]
    )
    llm_admin.add_rule(
        contains=marker,
        has_tools=True,
        responses=[
            {
                "tool_calls": [
                    {"name": "ask_human", "arguments": {"question": "Which colour, red or blue?"}}
                ]
            }
        ],
    )
    await _sign_in(page, proxy.url, api_key)
    workflow_id = await gateway.start(f"Ask the operator for a colour {marker}")
    await page.goto(f"{proxy.url}/ui/#/workflows/{workflow_id}")

    form = page.locator("form.input-request")
    await expect(form).to_be_visible(timeout=WAIT_MS)
    await expect(form.locator(".question")).to_have_text("Which colour, red or blue?")
    await form.get_by_label("Your answer").fill("blue")
    await form.get_by_role("button", name="Send answer").click()

    await expect(page.locator(".final-answer")).to_be_visible(timeout=WAIT_MS)
    await expect(page.locator(".timeline li[data-event-type='input.answered']")).to_have_count(1)
    finished = await gateway.get(workflow_id)
    assert finished["status"] == "completed"
    # The answer typed on the page is what the model got back from ask_human.
    tool_results = [
        message.get("content")
        for request in llm_admin.requests(contains=marker)
        for message in request.messages
        if message.get("role") == "tool"
    ]
    assert any("blue" in str(content) for content in tool_results), tool_results
