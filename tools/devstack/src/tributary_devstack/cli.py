"""``python -m tributary_devstack up|down|status|scale|logs|demo``."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from tributary_devstack import logs
from tributary_devstack.admin_key import ADMIN_TENANT, ensure_admin_key, read_admin_key
from tributary_devstack.config import StackConfig
from tributary_devstack.infra import redis_client_options
from tributary_devstack.llm_gates import format_gates, read_gates
from tributary_devstack.readiness import ComponentStartError, redis_ping
from tributary_devstack.services import SERVICE_NAMES
from tributary_devstack.stack import ComponentStatus, Stack


def _say(message: str) -> None:
    print(message, flush=True)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tributary_devstack",
        description="Run Tributary locally: Kafka and Redis as child processes, then the services.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start what is not running yet, in the background")
    up.add_argument(
        "--replicas",
        type=_positive_int,
        default=None,
        help="processes per service (default: $REPLICAS, else $TRIBUTARY_REPLICAS, else 1)",
    )
    up.add_argument("--infra-only", action="store_true", help="only Kafka, Redis and topics")

    sub.add_parser("down", help="stop everything 'up' started")
    sub.add_parser("status", help="show components, pids, ports and logs")

    scale = sub.add_parser("scale", help="run exactly N replicas of a service")
    scale.add_argument("service", choices=SERVICE_NAMES)
    scale.add_argument("replicas", type=_positive_int)

    log = sub.add_parser("logs", help="show (or follow) component logs")
    log.add_argument("component", nargs="?", help="e.g. kafka, gateway, agent-runner-1")
    log.add_argument("-n", "--lines", type=int, default=40)
    log.add_argument("-f", "--follow", action="store_true")

    demo = sub.add_parser("demo", help="run one workflow through the running stack")
    demo.add_argument("--task", default=None, help="the task to submit")
    demo.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the end")
    return parser


def inspector_link(gateway_url: str, key: str) -> str:
    """The web inspector, signed in with ``key``: the fragment never reaches the server,
    and the page removes it from the address bar once it has the key."""
    return f"{gateway_url}/ui/#key={key}"


def format_status(rows: list[ComponentStatus], config: StackConfig) -> str:
    header = f"{'COMPONENT':<16} {'PID':>8} {'PORT':>6}  {'STATE':<10} LOG"
    lines = [header]
    for row in rows:
        pid = str(row.pid) if row.pid is not None else "-"
        port = str(row.port) if row.port is not None else "-"
        lines.append(f"{row.name:<16} {pid:>8} {port:>6}  {row.state:<10} {row.log_path}")
    lines.append(f"Gateway: {config.gateway_url}")
    lines.append(f"Gateway metrics: {config.gateway_metrics_url} (a port apart from the API)")
    key = read_admin_key(config)
    if key is None:
        lines.append("API key: none yet ('make up' issues one)")
        lines.append(f"Inspector: {config.gateway_url}/ui/")
    else:
        lines.append(f"API key (admin, tenant {ADMIN_TENANT}; in {config.admin_key_file}): {key}")
        lines.append(
            f"  try: curl -H 'Authorization: Bearer {key}' {config.gateway_url}/v1/workflows"
        )
        lines.append(f"  inspector: {inspector_link(config.gateway_url, key)}")
    return "\n".join(lines)


def _replicas_from_env(config: StackConfig) -> int:
    raw = os.environ.get("REPLICAS", "").strip()
    return int(raw) if raw else config.replicas


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # aiokafka logs every refused connection while the broker is still
    # starting; readiness failures are reported by the stack itself.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    config = StackConfig()
    stack = Stack(config, say=_say)
    try:
        match args.command:
            case "up":
                replicas = (
                    args.replicas if args.replicas is not None else _replicas_from_env(config)
                )
                if not args.infra_only:
                    _say(stack.llm.describe())
                stack.up(replicas=replicas, infra_only=args.infra_only)
                _, issued = ensure_admin_key(config)
                if issued:
                    _say(f"Issued a local admin API key, saved in {config.admin_key_file}")
                _say(format_status(stack.status(), config))
            case "down":
                stopped = stack.down()
                _say("Stopped: " + ", ".join(stopped) if stopped else "Nothing was running.")
            case "status":
                _say(format_status(stack.status(), config))
                redis_options = redis_client_options(config)
                if redis_ping(config.redis_url, redis_options):
                    _say(format_gates(read_gates(config.redis_url, redis_options)))
            case "scale":
                handles = stack.scale(args.service, args.replicas)
                _say(f"{args.service}: {len(handles)} replica(s) running")
                for handle in handles:
                    _say(f"  {handle.name} pid {handle.pid} {handle.url}")
            case "logs":
                files = logs.log_files(config.logs_dir, args.component)
                if not files:
                    _say(f"No logs under {config.logs_dir} for {args.component or 'any component'}")
                    return 1
                logs.show(files, args.lines, _say)
                if args.follow:
                    logs.follow(files, _say)
            case "demo":
                from tributary_devstack.demo import run_demo

                return run_demo(config, task=args.task, timeout_s=args.timeout, say=_say)
    except ComponentStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(
            "Components that did start keep running; "
            "'python -m tributary_devstack down' stops them.",
            file=sys.stderr,
        )
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into e.g. `head`: stop quietly, like other CLI tools.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    return 0
