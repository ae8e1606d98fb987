"""A workflow's callback as the gateway accepts and shows it.

At create time the request's ``callback_url`` (or its tenant's default) is held to
the configuration: ``https`` unless http is allowed here, and a signing secret must
exist for the tenant, or the request gets ``422`` (refused at once rather than
accepted and never called). The state shows the URL, how far delivery got and every
try, never the secret.
"""

from __future__ import annotations

from typing import Literal

from fastapi import HTTPException
from pydantic import BaseModel, Field

from tributary_shared.core.callback_urls import check_callback_url
from tributary_shared.core.callbacks import CallbackAttempt
from tributary_shared.core.events import WorkflowOptions
from tributary_shared.core.ports import CallbackProgress
from tributary_shared.runtime.callbacks.settings import CallbackSettings

__all__ = ["CallbackView", "with_callback"]


def with_callback(
    options: WorkflowOptions, tenant_id: str, settings: CallbackSettings
) -> WorkflowOptions:
    """``options`` with the callback URL the workflow will be called at, if any; 422 for
    one that is not allowed here, or that no secret could sign."""
    url = options.callback_url or settings.default_url_for(tenant_id)
    if url is None:
        return options
    try:
        check_callback_url(url, allow_http=settings.allow_http)
    except ValueError as exc:
        raise HTTPException(422, f"options.{exc}") from None
    if settings.secret_for(tenant_id) is None:
        raise HTTPException(
            422,
            "options.callback_url cannot be used: no signing secret is configured for this "
            "tenant (TRIBUTARY_CALLBACK_SECRET or TRIBUTARY_CALLBACK_TENANTS)",
        )
    return (
        options if url == options.callback_url else options.model_copy(update={"callback_url": url})
    )


class CallbackView(BaseModel):
    """How far the workflow's callback got."""

    url: str
    state: Literal["pending", "delivered", "failed"] = Field(
        description="pending: not yet delivered (the workflow runs, or tries go on); "
        "delivered: a try got a 2xx answer; failed: given up."
    )
    attempts: list[CallbackAttempt] = Field(description="Every try so far, in order.")

    @classmethod
    def of(cls, url: str, progress: CallbackProgress) -> CallbackView:
        return cls(url=url, state=progress.state, attempts=list(progress.attempts))
