"""Open a report in headless Chromium (Debian ``chromium``) and check it: the page loads, every
image decodes (the page's own ``#image-check`` counter), and every link has a target: an in-page
anchor, or a file beside the report (the viewer site); nothing points off the machine."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from pathlib import Path

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def find_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def _local_target(page: Path, href: str) -> bool:
    """A relative link to a file beside the page that exists (``view/index.html#layer=x``)."""
    target = href.split("#", 1)[0]
    return bool(target) and ":" not in target and not target.startswith("/") and (page.parent / target).is_file()


def check_report(html_path: str | Path, timeout: float = 60.0) -> dict:
    """{'loaded': n, 'total': m, 'broken_links': [...], 'dom_bytes': k}; raises if Chromium is missing."""
    exe = find_chromium()
    if exe is None:
        raise FileNotFoundError("chromium not found (apt-get install chromium)")
    html_path = Path(html_path).resolve()
    with tempfile.TemporaryDirectory() as profile:
        p = subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=5000",
                            "--dump-dom", html_path.as_uri()], capture_output=True, text=True, timeout=timeout)
    dom = p.stdout
    m = re.search(r"images loaded: (\d+)/(\d+)", dom)
    ids = set(re.findall(r'id="([^"]+)"', dom))
    links = re.findall(r'href="([^"]+)"', dom)
    broken = [h for h in links if (h.startswith("#") and h[1:] not in ids) or not (h.startswith("#") or h.startswith("data:")
                                                                                    or _local_target(html_path, h))]
    srcs = re.findall(r'<img[^>]+src="([^"]{0,30})', dom)
    broken += [s for s in srcs if not s.startswith("data:image/png;base64,")]
    return {"loaded": int(m.group(1)) if m else 0, "total": int(m.group(2)) if m else -1, "broken_links": broken,
            "dom_bytes": len(dom)}
