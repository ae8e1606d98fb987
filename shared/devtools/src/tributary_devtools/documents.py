"""Every generated document of the repository, in one registry.

``make docs`` (``python -m tributary_devtools write``) rewrites them all and
``make docs-check`` (``check``) fails when any committed copy has drifted from
the code; the unit suite checks the same list. The contract documents are the
list :data:`tributary_devtools.contract.files.GENERATED_FILES`, read when asked
rather than copied, so a document added there is covered here too. Add any
other generated document to :data:`OTHER_FILES`.
"""

from __future__ import annotations

from tributary_devtools.config_doc import DOC_PATH, render_configuration_doc
from tributary_devtools.contract import files as contract_files
from tributary_devtools.contract.files import GeneratedFile
from tributary_devtools.generated import REGENERATE_ALL as REGENERATE

__all__ = ["OTHER_FILES", "REGENERATE", "generated_files"]

#: Generated documents other than the event contract's.
OTHER_FILES: tuple[GeneratedFile, ...] = (GeneratedFile(DOC_PATH, render_configuration_doc),)


def generated_files() -> tuple[GeneratedFile, ...]:
    """Every generated document: the contract's, then :data:`OTHER_FILES`."""
    return (*contract_files.GENERATED_FILES, *OTHER_FILES)
