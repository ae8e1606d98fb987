"""``python -m tributary_cli``: the same as the ``tributary`` command."""

from tributary_cli.app import main

raise SystemExit(main())
