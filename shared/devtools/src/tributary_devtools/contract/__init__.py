"""The event contract as documents: an AsyncAPI 3.0 description and a Markdown guide.

Both are generated from the code (the event models, the topics, the Kafka
headers and the service roles table), so the documents cannot say something the
code does not do. ``python -m tributary_devtools.contract write`` regenerates the
committed copies under ``docs/``; ``check`` fails when they have drifted.
"""

from __future__ import annotations

from tributary_devtools.contract.asyncapi import build_asyncapi, render_asyncapi
from tributary_devtools.contract.events_doc import render_events_doc
from tributary_devtools.contract.files import GENERATED_FILES, GeneratedFile

__all__ = [
    "GENERATED_FILES",
    "GeneratedFile",
    "build_asyncapi",
    "render_asyncapi",
    "render_events_doc",
]
