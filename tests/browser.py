"""Headless Chromium for tests: a screenshot of a local page, and every request the page made.

Playwright drives Debian's Chromium (``/usr/bin/chromium``; Playwright's own browser download is
never used) and records each request the page issues, whatever its host or scheme, apart from the
page's own file. Chromium's own service traffic (component updates and the like) is not the page's
and is not recorded; the browser also runs with background networking off.
"""

from __future__ import annotations

import shutil
from pathlib import Path

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if not exe:
        raise RuntimeError("chromium is not installed (Debian: apt-get install chromium)")
    return exe


def screenshot(page: Path, png: Path, width: int = 1200, height: int = 900) -> tuple[Path, list[str]]:
    """Render ``page`` (a local HTML file), save a full-page PNG; returns it and the requests made."""
    from playwright.sync_api import sync_playwright

    url = page.resolve().as_uri()
    requests: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), headless=True, args=CHROMIUM_ARGS)
        try:
            tab = browser.new_page(viewport={"width": width, "height": height})
            tab.on("request", lambda r: requests.append(r.url) if r.url != url else None)
            tab.goto(url, wait_until="load", timeout=60_000)
            tab.screenshot(path=str(png), full_page=True)
        finally:
            browser.close()
    return png, requests
