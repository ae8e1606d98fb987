"""The form a workflow's ``callback_url`` must have, checked where the request is read.

Apart from ``core.callbacks`` so that the event contract (``WorkflowOptions``) can
check it without importing the rest of the callbacks' rules.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["CALLBACK_URL_MAX_CHARS", "check_callback_url"]

CALLBACK_URL_MAX_CHARS = 2048


def check_callback_url(url: str, *, allow_http: bool = False) -> str:
    """``url`` if it may be a callback target by its form; else ``ValueError`` saying why.

    Only the form: which addresses it may reach is decided when it is called
    (names resolve differently over time). ``https`` only, unless ``allow_http``
    (for local development and tests); no user name or password in it (they would
    be stored and shown with the workflow).
    """
    if len(url) > CALLBACK_URL_MAX_CHARS:
        raise ValueError(f"callback_url is longer than {CALLBACK_URL_MAX_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError("callback_url is not a valid URL") from None
    del port  # parsed only to refuse a malformed one
    if parts.scheme not in ("https", "http"):
        raise ValueError("callback_url must be an https:// URL")
    if parts.scheme == "http" and not allow_http:
        raise ValueError("callback_url must be https:// (http:// is not allowed here)")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError("callback_url must not hold a user name or password")
    if not parts.hostname:
        raise ValueError("callback_url has no host")
    if any(c.isspace() for c in url) or parts.fragment:
        raise ValueError("callback_url must not hold white space or a #fragment")
    return url
