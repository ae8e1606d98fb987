"""Dead letters: what a consumer could not process, with why and the original bytes."""

from __future__ import annotations

import base64
from collections.abc import Callable
from datetime import datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from tributary_shared.core.errors import ErrorClass, TributaryError, recovery_for
from tributary_shared.core.events import utc_now
from tributary_shared.core.redaction import DEFAULT_REDACTOR


class DeadLetter(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    consumer: str = Field(description="Consumer group that gave up on the message.")
    topic: str
    partition: int
    offset: int
    key: str | None
    error_class: str
    error_code: str
    error_message: str = Field(description="Why, with secrets redacted.")
    attempts: int
    refused: bool = Field(
        default=False,
        description="The message was refused as not its workflow's own (another tenant's, or "
        "unlike what the workflow store recorded); its workflow was left as it is.",
    )
    payload_b64: str = Field(description="The original message value, base64-encoded.")
    payload_text: str | None = Field(
        default=None, description="The original value as text, when it is valid UTF-8."
    )
    headers: dict[str, str] = Field(default_factory=dict)
    failed_at: AwareDatetime = Field(default_factory=utc_now)

    @classmethod
    def of(
        cls,
        *,
        consumer: str,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
        headers: dict[str, str],
        error: BaseException,
        attempts: int,
        redact: Callable[[str], str] = DEFAULT_REDACTOR,
        failed_at: datetime | None = None,
    ) -> DeadLetter:
        """The letter for a message given up on with ``error``; its message redacted."""
        if isinstance(error, TributaryError):
            error_class, error_code, error_message = (
                error.error_class.value,
                error.code,
                error.message,
            )
        else:
            error_class, error_code = ErrorClass.INTERNAL.value, "handler_failed"
            error_message = f"{type(error).__name__}: {error}"
        raw = value or b""
        try:
            text: str | None = raw.decode()
        except UnicodeDecodeError:
            text = None
        return cls(
            consumer=consumer,
            topic=topic,
            partition=partition,
            offset=offset,
            key=key.decode(errors="replace") if key is not None else None,
            error_class=error_class,
            error_code=error_code,
            error_message=redact(error_message),
            attempts=attempts,
            refused=recovery_for(error).spares_workflow,
            payload_b64=base64.b64encode(raw).decode(),
            payload_text=text,
            headers=headers,
            failed_at=failed_at or utc_now(),
        )

    def payload(self) -> bytes:
        return base64.b64decode(self.payload_b64)
