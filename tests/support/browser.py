"""Headless Chromium from Debian's ``chromium`` package, driven by Playwright.

Playwright never downloads a browser here: it launches the system one by path
(``TRIBUTARY_CHROMIUM`` names another).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, async_playwright

__all__ = ["chromium", "chromium_path", "screenshots_dir"]


def chromium_path() -> str:
    """The system Chromium; fails with how to install it when it is missing."""
    named = os.environ.get("TRIBUTARY_CHROMIUM")
    found = named or shutil.which("chromium") or shutil.which("chromium-browser")
    if not found or not Path(found).exists():
        raise RuntimeError(
            "no Chromium for the browser tests: `make setup` installs Debian's chromium "
            "(or set TRIBUTARY_CHROMIUM to a Chromium binary)"
        )
    return found


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    """Headless system Chromium, closed on the way out."""
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            yield launched
        finally:
            await launched.close()


def screenshots_dir() -> Path | None:
    """Where the browser tests save the inspector's screenshots, when asked to.

    ``make inspector-screenshots`` sets ``TRIBUTARY_INSPECTOR_SCREENSHOTS``; a plain
    test run takes none.
    """
    named = os.environ.get("TRIBUTARY_INSPECTOR_SCREENSHOTS")
    if not named:
        return None
    folder = Path(named)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
