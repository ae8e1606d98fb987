"""Command line: ``python -m tributary_scripted_llm --host 127.0.0.1 --port 8199``."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from pydantic import TypeAdapter

from .app import create_app
from .models import Rule, ServerConfig
from .unanswered import closable

_RULE_LIST = TypeAdapter(list[Rule])


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tributary_scripted_llm",
        description="Scripted OpenAI-compatible LLM server for tests, demos and benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8199)
    parser.add_argument(
        "--latency-ms", type=int, default=0, help="delay before every chat completion answer"
    )
    parser.add_argument(
        "--rules",
        type=Path,
        help="JSON file with a list of rules to load at start (same shape as POST /_admin/rules)",
    )
    parser.add_argument(
        "--max-recorded-requests",
        type=int,
        default=ServerConfig().max_recorded_requests,
        help="how many recent requests GET /_admin/requests keeps (0 disables recording)",
    )
    parser.add_argument(
        "--rate-limit-rpm",
        type=int,
        default=0,
        help="chat completions accepted per minute, 429 beyond (0: no limit)",
    )
    parser.add_argument(
        "--rate-limit-burst",
        type=int,
        default=0,
        help="how many of them may come at once (0: the minute's limit)",
    )
    parser.add_argument("--log-level", default="info")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if min(args.latency_ms, args.rate_limit_rpm, args.rate_limit_burst) < 0:
        raise SystemExit("--latency-ms, --rate-limit-rpm and --rate-limit-burst must be >= 0")
    rules = _RULE_LIST.validate_python(json.loads(args.rules.read_text())) if args.rules else []
    config = ServerConfig(
        latency_ms=args.latency_ms,
        max_recorded_requests=args.max_recorded_requests,
        rate_limit_rpm=args.rate_limit_rpm,
        rate_limit_burst=args.rate_limit_burst,
    )
    app = create_app(config, rules)
    uvicorn.run(
        closable(app),
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        access_log=args.access_log,
        lifespan="off",
        ws="none",
        # Hanging scripted requests would otherwise hold Ctrl-C up indefinitely.
        timeout_graceful_shutdown=1,
        # Hosted model APIs keep idle connections open for a minute or more; uvicorn's
        # 5 s default (the same as the clients' own pool expiry) makes a busy client
        # reuse connections the server is closing, which the client sees as the
        # endpoint failing.
        timeout_keep_alive=75,
    )


if __name__ == "__main__":
    main()
