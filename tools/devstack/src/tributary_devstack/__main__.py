"""Entry point of ``python -m tributary_devstack``."""

from tributary_devstack.cli import main

raise SystemExit(main())
