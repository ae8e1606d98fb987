"""The ``tributary`` command (``uv run tributary ...`` from a checkout).

    tributary run TASK [--max-steps N] [--token-budget N] ... [--plain] [--no-follow]
    tributary get WORKFLOW_ID [--json]
    tributary list [--status S ...] [--limit N] [--json]
    tributary events WORKFLOW_ID [--calls] [--mode MODE]
    tributary cancel WORKFLOW_ID [--reason R]
    tributary input WORKFLOW_ID REQUEST_ID ANSWER
    tributary delete WORKFLOW_ID
    tributary keys create --tenant NAME [--scope S ...] [--admin] [--label TEXT]
    tributary keys list [--tenant NAME] [--json]
    tributary keys revoke KEY_ID
    tributary replay WORKFLOW_ID [--json] [--full] | --from-file FILE [--rerun]
    tributary events export WORKFLOW_ID -o FILE

Each group of subcommands is one module with a ``register`` function
(``workflows``, ``keys``, ``replay``, ``events``); ``app`` assembles them. The
workflow commands call the gateway's HTTP API through the SDK
(``tributary-client``; ``--url``/``--api-key`` or ``TRIBUTARY_URL`` /
``TRIBUTARY_API_KEY``); docs/cli.md has them and their exit codes. The key commands talk
to Redis directly (``TRIBUTARY_REDIS_URL``, as the services do): they are how an
operator gets the first admin key, before any key exists to call the gateway
with. ``replay`` and ``events`` read Kafka alone (``TRIBUTARY_KAFKA_*``), or a file.
"""

from tributary_cli.app import main

__all__ = ["main"]
