"""How the workflow commands reach the gateway, and how its refusals become exit codes.

Exit codes of the workflow commands:

- 0: the command did what it was asked (for ``run`` and ``events``: the workflow completed);
- 1: the workflow failed or was cancelled (``run``, ``events``);
- 2: a usage error, no API key, no answer from the gateway, or an error answer (4xx, 5xx).
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable

from tributary_cli.context import CommandContext
from tributary_client import (
    DEFAULT_BASE_URL,
    APIError,
    AsyncTributary,
    ConnectionError,
    TributaryError,
)

__all__ = [
    "EXIT_OK",
    "EXIT_USAGE",
    "EXIT_WORKFLOW_FAILED",
    "add_connection_options",
    "with_gateway",
]

EXIT_OK = 0
EXIT_WORKFLOW_FAILED = 1
EXIT_USAGE = 2

URL_VARIABLE = "TRIBUTARY_URL"
KEY_VARIABLE = "TRIBUTARY_API_KEY"


def add_connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--url",
        metavar="URL",
        help=f"the gateway (default: ${URL_VARIABLE}, else {DEFAULT_BASE_URL})",
    )
    parser.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"the API key (default: ${KEY_VARIABLE}; the local stack's is in .run/admin.key)",
    )


async def with_gateway(
    args: argparse.Namespace,
    ctx: CommandContext,
    command: Callable[[AsyncTributary], Awaitable[int]],
) -> int:
    """Runs ``command`` with a client of the gateway; no key, no answer or a refusal is 2."""
    url = (args.url or ctx.environ.get(URL_VARIABLE) or DEFAULT_BASE_URL).rstrip("/")
    key = args.api_key or ctx.environ.get(KEY_VARIABLE) or ""
    if not key:
        ctx.warn(
            f"error: no API key: pass --api-key or set {KEY_VARIABLE} "
            "(the local stack writes its admin key to .run/admin.key)"
        )
        return EXIT_USAGE
    client = ctx.gateway(url, key)
    try:
        return await command(client)
    except ConnectionError as exc:
        ctx.warn(_redacted(f"error: cannot reach the gateway at {url}: {exc}", key))
    except APIError as exc:
        ctx.warn(_redacted(f"error: {_refusal(exc)}", key))
    except TributaryError as exc:
        ctx.warn(_redacted(f"error: {exc}", key))
    finally:
        await client.aclose()
    return EXIT_USAGE


def _refusal(error: APIError) -> str:
    """The gateway's answer in one line: its status and its own explanation."""
    detail = error.detail or error.code
    return f"the gateway answered {error.status}: {detail}"


def _redacted(message: str, key: str) -> str:
    # The key never reaches a terminal or a log, whatever an error message quotes.
    return message.replace(key, "***")
