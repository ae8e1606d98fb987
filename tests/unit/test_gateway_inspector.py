"""The web inspector's files under ``/ui``: served with a strict content-security policy,
without an API key, beside an API whose routes still demand one; a gateway without the
build says how to make it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.support.gateway_twins import gateway_over_twins
from tributary_gateway.inspector import CONTENT_SECURITY_POLICY, mount_inspector
from tributary_shared.twins import MemoryApiKeyStore, MemoryPublisher, MemoryWorkflowStore


def client_of(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")


@pytest.fixture
def built(tmp_path: Path) -> Path:
    (tmp_path / "index.html").write_text('<script type="module" src="./app.js"></script>')
    (tmp_path / "app.js").write_text("console.log('inspector');")
    return tmp_path


async def test_serves_the_build_with_a_same_origin_script_policy(built: Path) -> None:
    app = FastAPI()
    mount_inspector(app, build=built)
    async with client_of(app) as http:
        index = await http.get("/ui/")
        script = await http.get("/ui/app.js")
        bare = await http.get("/ui")
    assert index.status_code == 200
    assert 'src="./app.js"' in index.text
    policy = index.headers["content-security-policy"]
    assert policy == CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in policy
    assert "unsafe-inline" not in policy
    assert index.headers["x-content-type-options"] == "nosniff"
    assert script.status_code == 200
    assert script.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert bare.status_code in (301, 307)
    assert bare.headers["location"].endswith("/ui/")


async def test_without_a_build_it_says_how_to_make_one(tmp_path: Path) -> None:
    app = FastAPI()
    mount_inspector(app, build=tmp_path / "missing")
    async with client_of(app) as http:
        answer = await http.get("/ui/")
    assert answer.status_code == 503
    assert "make setup" in answer.text
    assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


@pytest.fixture
async def gateway() -> AsyncIterator[httpx.AsyncClient]:
    async with gateway_over_twins(
        store=MemoryWorkflowStore(), publisher=MemoryPublisher(), keys=MemoryApiKeyStore()
    ) as client:
        yield client


async def test_the_gateway_serves_it_without_a_key_while_the_api_still_needs_one(
    gateway: httpx.AsyncClient,
) -> None:
    page = await gateway.get("/ui/")
    # 200 with the build (make setup makes it), 503 and the way to build it without.
    assert page.status_code in (200, 503)
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert (await gateway.get("/v1/workflows")).status_code == 401
    assert "/ui" not in str((await gateway.get("/openapi.json")).json()["paths"])
