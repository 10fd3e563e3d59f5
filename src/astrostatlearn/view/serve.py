"""Serve a built site on http://127.0.0.1:PORT/ (the standard library's threaded HTTP server).

The viewer reads its ID tiles and catalogue chunks with ``fetch``, which browsers refuse on
``file://`` pages: open the site through this server (or any static web server).
"""

from __future__ import annotations

import errno
import functools
import socket
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable

from astrostatlearn.errors import InputError

HOST = "127.0.0.1"


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass


def check_site(site: str | Path) -> Path:
    site = Path(site)
    if not (site / "index.html").exists() or not (site / "site.js").exists():
        raise InputError("not a viewer site (no index.html and site.js); build one with astrostatlearn view", site)
    return site


def check_port(port: int) -> None:
    """Refuse a port out of range or already in use on 127.0.0.1 (checked before a long build)."""
    if not 0 < port < 65536:
        raise InputError(f"port must be in 1..65535, got {port}")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise InputError(f"port {port} is in use on {HOST}; choose another with --port") from None
            raise InputError(f"cannot listen on {HOST}:{port} ({exc.strerror})") from None


def make_server(site: str | Path, port: int) -> ThreadingHTTPServer:
    """An HTTP server for ``site`` on 127.0.0.1:``port`` (0: any free port), not yet serving."""
    site = check_site(site)
    if port:
        check_port(port)
    handler = functools.partial(_QuietHandler, directory=str(site))
    try:
        return ThreadingHTTPServer((HOST, port), handler)
    except OSError as exc:
        raise InputError(f"cannot listen on {HOST}:{port} ({exc.strerror})") from None


def serve_site(site: str | Path, port: int = 8000, announce: Callable[[str], None] = print) -> None:
    """Serve ``site`` until interrupted; ``announce`` receives the address.

    Parameters
    ----------
    site : str or Path
        A folder written by :func:`build_site`.
    port : int
        TCP port on 127.0.0.1.
    announce : callable
        Receives the line with the address once the server listens.

    Raises
    ------
    InputError
        Not a viewer site, or the port is in use.

    Examples
    --------
    >>> from astrostatlearn.view import serve_site
    >>> serve_site("no-such-site")
    Traceback (most recent call last):
    ...
    astrostatlearn.errors.InputError: no-such-site: not a viewer site (no index.html and site.js); build one with astrostatlearn view
    """
    server = make_server(site, port)
    try:
        announce(f"serving {Path(site)} at http://{HOST}:{server.server_address[1]}/ (Ctrl-C to stop)")
        server.serve_forever()
    finally:
        server.server_close()
