"""Reports opened as a person opens them: in headless Chromium (Debian's ``chromium``, driven by
Playwright for Python; Playwright's own browser download is not used).

:func:`open_report` loads ``DIR/index.html`` from disk, records console errors, page errors and
every request (refusing those outside ``DIR``), and waits until every image has loaded or failed.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def chromium_path() -> str | None:
    """The Chromium binary: $CHROMIUM, else the first of :data:`CHROMIUM_NAMES` on PATH."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return next((p for p in map(shutil.which, CHROMIUM_NAMES) if p), None)


@dataclass
class OpenedReport:
    page: object                       # playwright Page
    folder: Path
    console_errors: list[str] = field(default_factory=list)
    outside_requests: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def data(self) -> dict:
        """The page's embedded numbers (``<script id="report-data">``)."""
        import json

        return json.loads(self.page.locator("#report-data").text_content())

    def broken_images(self) -> list[str]:
        """Images that did not decode (naturalWidth 0)."""
        return self.page.eval_on_selector_all(
            "img", "imgs => imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)")

    def image_count(self) -> int:
        return self.page.locator("img").count()


def open_report(browser, folder: Path, width: int = 1280, height: int = 900) -> OpenedReport:
    """Open ``folder/index.html`` in a new page of ``browser``; requests outside ``folder`` are aborted
    and recorded."""
    folder = Path(folder).resolve()
    page = browser.new_page(viewport={"width": width, "height": height})
    opened = OpenedReport(page, folder)
    page.on("console", lambda m: opened.console_errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: opened.console_errors.append(str(e)))
    inside = (folder.as_uri() + "/")

    def route(r):
        url = r.request.url
        opened.requests.append(url)
        if url.startswith(inside) or url.startswith("data:"):
            r.continue_()
        else:
            opened.outside_requests.append(url)
            r.abort()

    page.route("**/*", route)
    page.goto((folder / "index.html").as_uri(), wait_until="load")
    page.wait_for_function("Array.from(document.images).every(i => i.complete)")
    return opened


def screenshot_is_blank(png: bytes) -> bool:
    """A screenshot with (almost) one colour: the page drew nothing."""
    import io

    import numpy as np
    from PIL import Image

    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).reshape(-1, 3)
    return len(np.unique(pixels[:: max(1, len(pixels) // 50000)], axis=0)) < 8 or float(pixels.std()) < 5.0
