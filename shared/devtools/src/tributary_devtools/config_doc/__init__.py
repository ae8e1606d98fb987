"""docs/configuration.md: every environment variable the services and the local stack read.

The page is generated from the pydantic-settings classes themselves: names
(prefix, aliases), types, defaults and constraints come from the fields, and
descriptions from ``Field(description=...)``, which every field must have. The
unit suite compares the committed page with :func:`render_configuration_doc`, so
the page cannot drift from the code; ``make docs`` rewrites it.
"""

from __future__ import annotations

from tributary_devtools.config_doc.fields import (
    MissingDescriptionError,
    Setting,
    env_names,
    keys_of,
    settings_of,
)
from tributary_devtools.config_doc.page import DOC_PATH, REGENERATE, render_configuration_doc
from tributary_devtools.config_doc.sources import (
    READERS,
    UnlistedSettingsError,
    qualified_name,
    settings_classes,
    stack_config,
)

__all__ = [
    "DOC_PATH",
    "READERS",
    "REGENERATE",
    "MissingDescriptionError",
    "Setting",
    "UnlistedSettingsError",
    "env_names",
    "keys_of",
    "qualified_name",
    "render_configuration_doc",
    "settings_classes",
    "settings_of",
    "stack_config",
]
