"""``python -m bench.run <scenario> [options]``: benchmarks of the whole local stack.

Scenarios (each starts its own stack under --run-dir on ports 39092/39093 (Kafka),
36379 (Redis), 38000-38199 (services, scripted LLM; replica i of a service on its
port + 100 x i, see --replicas) and stops it at the end):

  verify        one workflow; counts its LLM requests through the LLM's admin API
  client-bound  the 8 LLM calls per workflow from one process, no orchestration
  throughput    open-loop Poisson arrivals at rising rates, 0 ms LLM latency:
                the highest sustained rate, and the client bound for comparison
  latency       2 workflows/s at 200 ms per LLM call: overhead over 4 x 200 ms
  inflight      2,000 workflows at once at 60 s per LLM call; memory per workflow
  profile       py-spy samples of every Python service under open-loop load
  down          stop whatever a benchmark left running in --run-dir
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from bench import replicas, scenarios
from bench.stackctl import DEFAULT_RUN_DIR
from tributary_devstack.config import find_repo_root


def _tuning(pairs: Sequence[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise argparse.ArgumentTypeError(f"--env wants NAME=VALUE, got {pair!r}")
        out[name] = value
    return out


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--run-dir", type=Path, default=DEFAULT_RUN_DIR)
    common.add_argument("--results-dir", type=Path, default=None, help="default: <run dir>/results")
    common.add_argument("--keep-up", action="store_true", help="leave the stack running at the end")
    common.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the services (repeatable), e.g. TRIBUTARY_MAX_IN_FLIGHT=256",
    )
    common.add_argument(
        "--redis-url-query",
        default="",
        metavar="QUERY",
        help="appended to the services' Redis URL as pool options, e.g. max_connections=5000",
    )
    common.add_argument(
        "--port-offset",
        type=int,
        default=0,
        help="add this to every port (39092, 36379, 38000, ...) when one is taken",
    )
    common.add_argument(
        "--replicas",
        type=replicas.parse_replica_option,
        action="append",
        default=[],
        metavar="SERVICE=N",
        help=f"run N processes of SERVICE ({', '.join(replicas.SERVICES)}); repeatable; "
        "default one of each",
    )
    sub = parser.add_subparsers(dest="scenario", required=True)

    sub.add_parser("verify", parents=[common], help="count the LLM calls of one workflow")

    bound = sub.add_parser("client-bound", parents=[common], help="the LLM-client bound")
    bound.add_argument("--concurrency", type=_ints, default=[4, 8, 16, 64], help="e.g. 8,64")
    bound.add_argument("--duration", type=float, default=30.0)
    bound.add_argument("--warmup", type=float, default=3.0)

    tp = sub.add_parser("throughput", parents=[common], help="highest sustained rate at 0 ms")
    tp.add_argument("--start-rate", type=float, default=None, help="default: 30%% of the bound")
    tp.add_argument("--growth", type=float, default=1.25, help="rate factor between steps")
    tp.add_argument("--resolution", type=float, default=0.08, help="stop when within this fraction")
    tp.add_argument("--step-s", type=float, default=30.0, help="arrival window of each step")
    tp.add_argument("--drain-s", type=float, default=30.0)
    tp.add_argument("--max-steps", type=int, default=8)
    tp.add_argument("--watch", choices=("sse", "redis"), default="sse")
    tp.add_argument("--client-bound", type=float, default=None, help="known bound, workflows/s")
    tp.add_argument("--skip-client-bound", action="store_true")
    tp.add_argument("--bound-concurrency", type=_ints, default=[4, 8, 16])

    lat = sub.add_parser("latency", parents=[common], help="overhead at 200 ms per LLM call")
    lat.add_argument("--latency-ms", type=int, default=200)
    lat.add_argument("--rate", type=float, default=2.0)
    lat.add_argument("--duration", type=float, default=120.0)
    lat.add_argument("--fixed", action="store_true", help="evenly spaced arrivals, not Poisson")
    lat.add_argument("--watch", choices=("sse", "redis"), default="sse")

    inf = sub.add_parser("inflight", parents=[common], help="2,000 workflows in flight")
    inf.add_argument("--workflows", type=int, default=2000)
    inf.add_argument("--latency-ms", type=int, default=60_000)
    inf.add_argument("--arrival-rate", type=float, default=100.0)
    inf.add_argument("--poll-s", type=float, default=2.0)
    inf.add_argument("--grace-s", type=float, default=60.0)
    inf.add_argument("--profile-s", type=float, default=0.0, help="py-spy the services this long")
    inf.add_argument("--profile-at", type=float, default=60.0, help="seconds after the start")
    inf.add_argument(
        "--heap-at",
        type=float,
        default=0.0,
        help="seconds after the start to snapshot each service's heap (tracemalloc; "
        "slows the services, so the run's timings are not the targets'); 0: off",
    )
    inf.add_argument(
        "--skip-client-bound",
        action="store_true",
        help="do not first hold the same workflows with the bare client (its memory is the bound)",
    )

    prof = sub.add_parser("profile", parents=[common], help="py-spy profiles under load")
    prof.add_argument("--rate", type=float, default=3.0)
    prof.add_argument("--duration", type=float, default=30.0)
    prof.add_argument("--latency-ms", type=int, default=0)
    prof.add_argument("--watch", choices=("sse", "redis"), default="sse")

    sub.add_parser("down", parents=[common], help="stop a stack left running")
    return parser


RUNNERS: dict[str, Callable[[scenarios.Options, Any], dict[str, Any]]] = {
    "verify": scenarios.run_verify,
    "client-bound": scenarios.run_client_bound,
    "throughput": scenarios.run_throughput,
    "latency": scenarios.run_latency,
    "inflight": scenarios.run_inflight,
    "profile": scenarios.run_profile,
    "down": scenarios.run_down,
}


def _stop_on_sigterm(_signum: int, _frame: FrameType | None) -> None:
    # Unwind through the scenario's ``finally`` so its stack is stopped.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    root = find_repo_root()
    run_dir: Path = root / args.run_dir
    results_dir: Path = root / args.results_dir if args.results_dir else run_dir / "results"
    options = scenarios.Options(
        run_dir=run_dir,
        results_dir=results_dir,
        keep_up=args.keep_up,
        tuning=_tuning(args.env),
        redis_url_query=args.redis_url_query,
        port_offset=args.port_offset,
        replicas=replicas.replica_counts(args.replicas),
    )
    # The broker readiness probe logs every refused connection while Kafka starts.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    try:
        RUNNERS[args.scenario](options, args)
    except KeyboardInterrupt:
        print("interrupted; the stack was stopped", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
