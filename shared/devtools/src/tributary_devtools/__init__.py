"""Developer and operator tooling: generated documents and the admin CLI.

Not installed in service images; run from a checkout with ``uv run``.
"""
