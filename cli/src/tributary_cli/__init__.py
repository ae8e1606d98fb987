"""The ``tributary`` command (``uv run tributary ...`` from a checkout).

    tributary keys create --tenant NAME [--scope S ...] [--admin] [--label TEXT]
    tributary keys list [--tenant NAME] [--json]
    tributary keys revoke KEY_ID
    tributary replay WORKFLOW_ID [--json] [--full] | --from-file FILE [--rerun]
    tributary events export WORKFLOW_ID -o FILE

Each group of subcommands is one module with a ``register`` function
(``keys``, ``replay``, ``events``); ``app`` assembles them. The key commands talk
to Redis directly (``TRIBUTARY_REDIS_URL``, as the services do): they are how an
operator gets the first admin key, before any key exists to call the gateway
with. ``replay`` and ``events`` read Kafka alone (``TRIBUTARY_KAFKA_*``), or a file.
"""

from tributary_cli.app import main

__all__ = ["main"]
