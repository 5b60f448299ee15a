"""Serving a project over HTTP with uvicorn, loopback-only unless a token guards it."""

from __future__ import annotations

import ipaddress
import secrets
import signal
import socket
import sys
import threading
from typing import TextIO

from hvsa.errors import InputError
from hvsa.web.app import LOOPBACK_HOSTS, create_app
from hvsa.web.payloads import Limits
from hvsa.web.project import Project

__all__ = ["is_loopback", "listen", "serve"]


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or "localhost") is only reachable from this machine."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on (host, port); port 0 picks a free one."""
    if not 0 <= port <= 65535:
        raise InputError(f"port {port}: expected 0..65535")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as e:
        raise InputError(f"host {host!r}: cannot resolve it ({e.strerror})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as e:
        sock.close()
        raise InputError(f"{host}:{port}: cannot listen ({e.strerror}); pass another --port") from None
    sock.set_inheritable(True)
    return sock


def serve(
    project: Project,
    *,
    host: str = "127.0.0.1",
    port: int = 8765,
    limits: Limits = Limits(),
    out: TextIO | None = None,
) -> None:
    """Serve ``project`` until stopped (Ctrl-C or SIGTERM, both a normal end).

    On a loopback address requests must name a loopback Host; on any other address a token is
    generated and printed in the address to open, and every request must carry it.
    """
    import uvicorn

    out = out or sys.stdout
    loopback = is_loopback(host)
    token = None if loopback else secrets.token_urlsafe(24)
    allowed = frozenset(LOOPBACK_HOSTS | {host.lower()}) if loopback else None
    app = create_app(project, token=token, limits=limits, allowed_hosts=allowed)
    sock = listen(host, port)
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{bound}/" + (f"?token={token}" if token else "")
    print(f"hvsa: serving {project.session.folder} at {url}", file=out, flush=True)
    if token:
        print("hvsa: listening beyond this machine; the token in that address is required", file=out, flush=True)
    print("hvsa: Ctrl-C stops; run the same command again to resume", file=out, flush=True)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=5)
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:  # uvicorn re-raises the stopping signal after its shutdown: unwind, then close
        previous = signal.signal(signal.SIGTERM, _stop)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    print("hvsa: stopped; every saved annotation is in the project", file=out, flush=True)


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
