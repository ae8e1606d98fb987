"""Settings from files: ``<VARIABLE>_FILE`` names a file whose content is the variable's value.

Kubernetes mounts each key of a Secret as a file; pointing, say,
``TRIBUTARY_KAFKA_SASL_PASSWORD_FILE`` at one keeps the password out of the
process environment, which every child process inherits (the agent-runner
starts MCP servers and tool workers) and ``/proc/<pid>/environ`` shows.

The rule is the same for every variable of every settings class built on
``TributarySettings``, aliases included (``OPENAI_API_KEY_FILE`` works as
``OPENAI_API_KEY`` does): the file stands in for the variable exactly, so
which of a setting's variables wins is unchanged. Trailing line breaks are
dropped, since ``echo secret > file`` and most editors add one. A variable
set both ways is refused rather than resolved by a precedence nobody
remembers, and so is a file that cannot be read; the error names the
variable and the path, never the content.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic_settings import EnvSettingsSource

__all__ = ["FILE_SUFFIX", "EnvAndFilesSource", "FileVariableError"]

FILE_SUFFIX = "_FILE"


class FileVariableError(ValueError):
    """A ``_FILE`` variable that cannot stand in for its variable."""


class EnvAndFilesSource(EnvSettingsSource):
    """The environment, with ``X_FILE`` read into ``X`` for every variable a field reads."""

    def _load_env_vars(self) -> Mapping[str, str | None]:
        env = dict(super()._load_env_vars())
        suffix = FILE_SUFFIX if self.case_sensitive else FILE_SUFFIX.lower()
        for name in self._variable_names():
            path = env.get(name + suffix)
            if not path:
                continue
            shown = name.upper() if not self.case_sensitive else name
            if env.get(name) is not None:
                raise FileVariableError(
                    f"{shown} and {shown}{FILE_SUFFIX} are both set; set only one of them"
                )
            env[name] = read_value(shown + FILE_SUFFIX, Path(path))
        return env

    def _variable_names(self) -> list[str]:
        """Every variable the settings class reads, as this source spells it."""
        names: list[str] = []
        for field_name, field in self.settings_cls.model_fields.items():
            for _key, env_name, _complex in self._extract_field_info(field, field_name):
                names.append(env_name)
        return list(dict.fromkeys(names))


def read_value(variable: str, path: Path) -> str:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise FileVariableError(f"{variable}: cannot read {path}: {reason}") from None
    return text.rstrip("\r\n")
