"""``python -m tributary_devtools.admin``: operator commands.

    dead-letters list [--json]              every dead letter, oldest first
    dead-letters redrive POSITION [...]     publish letters' messages again

The Kafka address comes from TRIBUTARY_KAFKA_BOOTSTRAP_SERVERS (or --bootstrap), and
the connection's TLS and SASL settings from the same variables the services read
(TRIBUTARY_KAFKA_SECURITY_PROTOCOL, ...; see docs/configuration.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from tributary_devtools.admin.deadletters import read_letters, redrive, summary_line
from tributary_shared.runtime.kafka.security import kafka_security
from tributary_shared.runtime.settings import KafkaSettings, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tributary_devtools.admin")
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: from the env)")
    commands = parser.add_subparsers(dest="command", required=True)
    letters = commands.add_parser("dead-letters", help="inspect and re-drive dead letters")
    actions = letters.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="list dead letters")
    listing.add_argument("--json", action="store_true", help="one JSON object per line")
    again = actions.add_parser("redrive", help="publish letters' original messages again")
    again.add_argument("positions", nargs="+", metavar="PARTITION:OFFSET")
    args = parser.parse_args(argv)

    settings = load_settings(KafkaSettings)
    bootstrap = args.bootstrap or settings.kafka_bootstrap_servers
    security = kafka_security(settings)
    if args.action == "list":
        stored = asyncio.run(read_letters(bootstrap, security=security))
        for item in stored:
            if args.json:
                print(
                    json.dumps({"position": item.position, **item.letter.model_dump(mode="json")})
                )
            else:
                print(summary_line(item))
        if not args.json:
            print(f"{len(stored)} dead letter(s)", file=sys.stderr)
        return 0
    try:
        for line in asyncio.run(redrive(bootstrap, args.positions, security=security)):
            print(f"re-driven {line}")
    except (ValueError, LookupError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
