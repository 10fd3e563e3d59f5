"""Copy OpenSeadragon from the npm package into the Python package (run by `make viewer-assets`).

Reproducible: `npm ci` installs exactly the version and tarball (integrity hash) that
package-lock.json pins; this script copies the minified build, its button images and its
licence, and records the version, the tarball's integrity and each file's sha256 in
VENDOR.json, which the test suite checks against the shipped files.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

HERE = Path(__file__).parent
PACKAGE = HERE / "node_modules" / "openseadragon"
DEST = HERE.parent / "src" / "astrostatlearn" / "view" / "static" / "openseadragon"


def main() -> None:
    lock = json.loads((HERE / "package-lock.json").read_text())["packages"]["node_modules/openseadragon"]
    build = PACKAGE / "build" / "openseadragon"
    if DEST.exists():
        shutil.rmtree(DEST)
    (DEST / "images").mkdir(parents=True)
    files = {"openseadragon.min.js": build / "openseadragon.min.js", "LICENSE.txt": PACKAGE / "LICENSE.txt"}
    files.update({f"images/{p.name}": p for p in sorted((build / "images").glob("*.png"))})
    for name, src in files.items():
        shutil.copyfile(src, DEST / name)
    record = {"package": "openseadragon", "version": lock["version"], "resolved": lock.get("resolved"),
              "integrity": lock["integrity"],
              "sha256": {name: hashlib.sha256((DEST / name).read_bytes()).hexdigest() for name in files}}
    (DEST / "VENDOR.json").write_text(json.dumps(record, indent=1) + "\n")
    print(f"vendored openseadragon {record['version']}: {len(files)} files into {DEST}")


if __name__ == "__main__":
    main()
