"""The ``web_search`` built-in tool and its search providers.

A provider turns a query into a few results; the tool formats them as a
short numbered list, which costs the model little context and gives it URLs
to pass to ``fetch_url``. Providers are configured by the operator (settings
below) and are trusted endpoints, so unlike ``fetch_url`` they are not put
through the SSRF policy; their failures still become clean ``ToolError``s.

Secrets (API keys, credentials in the SearXNG URL) are kept out of every
message a provider produces, out of logs and out of tool results.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import SettingsConfigDict

from tributary_shared.runtime.settings import TributarySettings

from .html_text import inline_text
from .registry import Tool, ToolError

logger = logging.getLogger(__name__)

MAX_RESULTS_LIMIT = 20
_TITLE_CHARS = 200
_SNIPPET_CHARS = 300


class WebSearchSettings(TributarySettings):
    """Which search provider the ``web_search`` tool uses (env ``TRIBUTARY_WEB_SEARCH_*``).

    With no provider configured the tool is not offered at all.
    """

    model_config = SettingsConfigDict(env_prefix="TRIBUTARY_WEB_SEARCH_", extra="ignore")

    provider: Literal["searxng", "brave"] | None = Field(
        default=None,
        description="Search provider of the `web_search` tool; unset: SearXNG when its URL is "
        "set, else Brave when its key is. With neither configured the tool is not offered.",
    )
    searxng_url: str | None = Field(
        default=None,
        description="Base URL of a SearXNG instance with the JSON format enabled (its "
        "`search.formats` setting); `user:pass@` in it is sent as basic auth and never logged.",
    )
    brave_api_key: SecretStr | None = Field(
        default=None,
        description="Brave Search API key; sent in a request header only, never logged.",
    )
    brave_url: str = Field(
        default="https://api.search.brave.com/res/v1/web/search",
        description="Brave Search API endpoint; change it only to go through a proxy.",
    )
    max_results: int = Field(
        default=5,
        ge=1,
        le=MAX_RESULTS_LIMIT,
        description="Results per query: the number returned by default and the most the model "
        "may ask for. Each costs the model some context.",
    )
    timeout_s: float = Field(
        default=15.0,
        gt=0,
        le=120,
        description="Seconds one search request may take before the tool reports a timeout to "
        "the model.",
    )

    @field_validator("provider", "searxng_url", "brave_api_key", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # An empty environment variable means "not configured", not "configured as ''".
        return None if isinstance(value, str) and not value.strip() else value


@dataclass(frozen=True, slots=True)
class SearchResult:
    title: str
    url: str
    snippet: str


class SearchProviderError(Exception):
    """A provider failed; the message is safe to show (it never contains secrets)."""


class SearchProvider(Protocol):
    """Turns a query into at most ``count`` results, or raises SearchProviderError."""

    @property
    def name(self) -> str: ...

    async def search(self, query: str, count: int) -> list[SearchResult]: ...


# --- shared HTTP handling ----------------------------------------------------


async def _get_json(
    provider: str,
    url: httpx.URL,
    *,
    params: dict[str, str | int],
    headers: dict[str, str],
    auth: httpx.BasicAuth | None,
    timeout_s: float,
    transport: httpx.AsyncBaseTransport | None,
    status_hints: dict[int, str],
) -> Any:
    """GET a JSON document, mapping every failure to a secret-free SearchProviderError."""
    try:
        async with httpx.AsyncClient(timeout=timeout_s, transport=transport) as client:
            response = await client.get(url, params=params, headers=headers, auth=auth)
    except httpx.TimeoutException:
        logger.warning("web search provider %s timed out", provider)
        raise SearchProviderError(f"the {provider} search provider timed out") from None
    except httpx.HTTPError as exc:
        logger.warning("web search provider %s unreachable: %s", provider, type(exc).__name__)
        raise SearchProviderError(
            f"could not reach the {provider} search provider ({type(exc).__name__})"
        ) from None
    if response.status_code != 200:
        logger.warning("web search provider %s answered HTTP %d", provider, response.status_code)
        hint = status_hints.get(response.status_code, "")
        raise SearchProviderError(
            f"the {provider} search provider answered HTTP {response.status_code}{hint}"
        )
    try:
        return response.json()
    except ValueError:
        raise SearchProviderError(f"the {provider} search provider sent invalid JSON") from None


def _split_credentials(base_url: str) -> tuple[httpx.URL, httpx.BasicAuth | None]:
    """Move ``user:pass@`` out of the URL so it never shows up in logged URLs."""
    try:
        url = httpx.URL(base_url)
    except httpx.InvalidURL:
        raise ValueError("the search provider URL is not a valid URL") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("the search provider URL must be an absolute http(s) URL")
    if not url.userinfo:
        return url, None
    return url.copy_with(username=None, password=None), httpx.BasicAuth(url.username, url.password)


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


# --- SearXNG -------------------------------------------------------------------


class _SearxngResult(_Lenient):
    title: str = ""
    url: str = ""
    content: str = ""


class _SearxngResponse(_Lenient):
    results: list[_SearxngResult] = Field(default_factory=list)
    unresponsive_engines: list[Any] = Field(default_factory=list)


class SearxngProvider:
    """SearXNG's JSON API: ``GET {base}/search?q=...&format=json``."""

    name = "searxng"

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        base, self._auth = _split_credentials(base_url)
        self._endpoint = base.join(base.path.rstrip("/") + "/search")
        self._timeout_s = timeout_s
        self._transport = transport

    async def search(self, query: str, count: int) -> list[SearchResult]:
        data = await _get_json(
            self.name,
            self._endpoint,
            params={"q": query, "format": "json", "pageno": 1},
            headers={"Accept": "application/json"},
            auth=self._auth,
            timeout_s=self._timeout_s,
            transport=self._transport,
            status_hints={403: " (is the json format enabled in its search.formats setting?)"},
        )
        try:
            parsed = _SearxngResponse.model_validate(data)
        except ValidationError:
            raise SearchProviderError(
                "the searxng search provider sent an invalid response"
            ) from None
        if not parsed.results and parsed.unresponsive_engines:
            raise SearchProviderError("the searxng search engines did not respond")
        return [
            SearchResult(inline_text(r.title), r.url, inline_text(r.content))
            for r in parsed.results
            if r.url
        ][:count]


# --- Brave Search -------------------------------------------------------------


class _BraveResult(_Lenient):
    title: str = ""
    url: str = ""
    description: str = ""


class _BraveWeb(_Lenient):
    results: list[_BraveResult] = Field(default_factory=list)


class _BraveResponse(_Lenient):
    web: _BraveWeb = Field(default_factory=_BraveWeb)


class BraveProvider:
    """Brave Search API (web results); the key travels only in a request header."""

    name = "brave"

    def __init__(
        self,
        api_key: SecretStr,
        *,
        url: str = "https://api.search.brave.com/res/v1/web/search",
        timeout_s: float = 15.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._api_key = api_key
        self._endpoint, self._auth = _split_credentials(url)
        self._timeout_s = timeout_s
        self._transport = transport

    async def search(self, query: str, count: int) -> list[SearchResult]:
        data = await _get_json(
            self.name,
            self._endpoint,
            params={"q": query, "count": min(count, MAX_RESULTS_LIMIT)},
            headers={
                "Accept": "application/json",
                "X-Subscription-Token": self._api_key.get_secret_value(),
            },
            auth=self._auth,
            timeout_s=self._timeout_s,
            transport=self._transport,
            status_hints={
                401: " (the API key was rejected)",
                403: " (the API key was rejected)",
                429: " (rate limited)",
            },
        )
        try:
            parsed = _BraveResponse.model_validate(data)
        except ValidationError:
            raise SearchProviderError(
                "the brave search provider sent an invalid response"
            ) from None
        return [
            SearchResult(inline_text(r.title), r.url, inline_text(r.description))
            for r in parsed.web.results
            if r.url
        ][:count]


# --- the tool -------------------------------------------------------------------


class WebSearchArgs(BaseModel):
    query: str = Field(min_length=1, max_length=400, description="What to search the web for.")
    count: int | None = Field(
        default=None,
        ge=1,
        le=MAX_RESULTS_LIMIT,
        description="How many results to return (the operator's limit applies).",
    )


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def format_results(query: str, results: list[SearchResult]) -> str:
    """Numbered list: title, URL, snippet -- compact enough for a model's context."""
    if not results:
        return f"No results for {query!r}."
    lines = [f"Results for {query!r}:"]
    for i, result in enumerate(results, start=1):
        lines.append(f"{i}. {_clip(result.title, _TITLE_CHARS) or '(untitled)'}")
        lines.append(f"   {result.url}")
        if result.snippet:
            lines.append(f"   {_clip(result.snippet, _SNIPPET_CHARS)}")
    return "\n".join(lines)


def make_web_search_tool(
    provider: SearchProvider, *, max_results: int = 5, timeout_s: float = 15.0
) -> Tool[WebSearchArgs]:
    """Build the ``web_search`` tool around any provider."""
    if not 1 <= max_results <= MAX_RESULTS_LIMIT:
        raise ValueError(f"max_results must be between 1 and {MAX_RESULTS_LIMIT}")

    async def run(args: WebSearchArgs) -> str:
        count = min(args.count or max_results, max_results)
        query = args.query.strip()
        if not query:
            raise ToolError("web search needs a non-empty query")
        try:
            results = await provider.search(query, count)
        except SearchProviderError as exc:
            raise ToolError(f"web search failed: {exc}") from None
        return format_results(query, results[:count])

    return Tool(
        name="web_search",
        description=(
            "Search the web. Returns a numbered list of results (title, URL, snippet); "
            "use fetch_url on a result's URL to read the page."
        ),
        args_model=WebSearchArgs,
        run=run,
        timeout_s=timeout_s + 5.0,  # the provider's own timeout gives the clearer message
        read_only=True,
    )


def search_provider_from_settings(
    settings: WebSearchSettings, *, transport: httpx.AsyncBaseTransport | None = None
) -> SearchProvider | None:
    """The configured provider, or ``None`` if none is; raises ValueError on bad config."""
    choice = settings.provider
    if choice is None:
        if settings.searxng_url:
            choice = "searxng"
        elif settings.brave_api_key is not None:
            choice = "brave"
        else:
            return None
    if choice == "searxng":
        if not settings.searxng_url:
            raise ValueError("web search provider searxng needs TRIBUTARY_WEB_SEARCH_SEARXNG_URL")
        return SearxngProvider(
            settings.searxng_url, timeout_s=settings.timeout_s, transport=transport
        )
    if settings.brave_api_key is None:
        raise ValueError("web search provider brave needs TRIBUTARY_WEB_SEARCH_BRAVE_API_KEY")
    return BraveProvider(
        settings.brave_api_key,
        url=settings.brave_url,
        timeout_s=settings.timeout_s,
        transport=transport,
    )


def web_search_tool_from_settings(
    settings: WebSearchSettings | None = None,
) -> Tool[WebSearchArgs] | None:
    """The ``web_search`` tool, or ``None`` when no provider is configured (tool not offered).

    Without ``settings`` they are read from the environment.
    """
    settings = settings if settings is not None else WebSearchSettings()
    provider = search_provider_from_settings(settings)
    if provider is None:
        return None
    return make_web_search_tool(
        provider, max_results=settings.max_results, timeout_s=settings.timeout_s
    )
