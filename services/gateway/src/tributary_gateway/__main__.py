"""Entry point: ``python -m tributary_gateway``."""

from __future__ import annotations

import uvicorn

from tributary_gateway.app import create_app
from tributary_shared.runtime.settings import HttpSettings, load_settings


def main() -> None:
    http = load_settings(HttpSettings)
    uvicorn.run(
        create_app(),
        host=http.http_host,
        port=http.http_port,
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=5,
    )


if __name__ == "__main__":
    main()
