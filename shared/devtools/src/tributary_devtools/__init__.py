"""Developer and operator tooling: generated documents and the admin CLI.

Not installed in service images; run from a checkout with ``uv run``. Its
surface is its subpackages, each with its own ``__all__``: ``contract`` (the
event contract and topology documents) and ``admin`` (operator commands).
"""

__all__ = ["admin", "contract"]
