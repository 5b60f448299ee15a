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

__all__ = ["is_loopback", "listen", "serve", "BackgroundServer"]


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


class _Listener:
    """The app for ``project`` on a bound socket: what :func:`serve` and
    :class:`BackgroundServer` share."""

    def __init__(self, project: Project, host: str, port: int, limits: Limits) -> None:
        import uvicorn

        loopback = is_loopback(host)
        self.token = None if loopback else secrets.token_urlsafe(24)
        allowed = frozenset(LOOPBACK_HOSTS | {host.lower()}) if loopback else None
        app = create_app(project, token=self.token, limits=limits, allowed_hosts=allowed)
        self.sock = listen(host, port)
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{self.sock.getsockname()[1]}/"
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_graceful_shutdown=5)
        self.server = uvicorn.Server(config)

    def run(self) -> None:
        try:
            self.server.run(sockets=[self.sock])
        finally:
            self.sock.close()


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
    out = out or sys.stdout
    listener = _Listener(project, host, port, limits)
    url = listener.url + (f"?token={listener.token}" if listener.token else "")
    print(f"hvsa: serving {project.session.folder} at {url}", file=out, flush=True)
    if listener.token:
        print("hvsa: listening beyond this machine; the token in that address is required", file=out, flush=True)
    print("hvsa: Ctrl-C stops; run the same command again to resume", file=out, flush=True)
    main_thread = threading.current_thread() is threading.main_thread()
    if main_thread:  # uvicorn re-raises the stopping signal after its shutdown: unwind, then close
        previous = signal.signal(signal.SIGTERM, _stop)
    try:
        listener.run()
    except KeyboardInterrupt:
        pass
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
    print("hvsa: stopped; every saved annotation is in the project", file=out, flush=True)


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


class BackgroundServer:
    """``project`` served from a thread of this process (scripts, tests, notebooks).

    ``url`` is where it listens (port 0 picks a free one); :meth:`close` stops it.
    """

    def __init__(self, project: Project, *, host: str = "127.0.0.1", port: int = 0, limits: Limits = Limits()) -> None:
        self._listener = _Listener(project, host, port, limits)
        self.url = self._listener.url
        self.token = self._listener.token
        self._thread = threading.Thread(target=self._listener.run, name="hvsa-server", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 30.0) -> None:
        self._listener.server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> "BackgroundServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
