"""The annotation app's HTTP interface (Starlette): the page, its static files, a JSON API.

Endpoints (frame index ``t``, pool index ``p``; every body and answer is JSON unless an image)::

    GET  /                                  the page
    GET  /static/{name}                     app.js, app.css (a fixed table; no path opens a file)
    GET  /api/state                         project, phase and progress, batch, clicks, iterations
    GET  /api/frames                        per-frame names, mean margin (confidence strip), annotated
    GET  /api/frames/{t}/image.jpg          the frame at the working size
    GET  /api/frames/{t}/prediction.png     latest labels, RGBA in the class colours
    GET  /api/frames/{t}/annotations.png    annotated pixels in the class colours, transparent elsewhere
    GET  /api/samples/{p}                   a selected sample: frame, bbox, mask runs, saved annotation
    PUT  /api/samples/{p}/annotation        save a drawing (:mod:`hvsa.web.payloads`); answered after the commit
    POST /api/batch/complete                hand the annotated batch to fine-tuning (202)
    POST /api/export                        write PNG index masks of every frame to PROJECT/export/png (202)

Errors answer ``{"error": message}`` with 400 (bad request body), 404 (no such frame or sample),
409 (wrong phase), 413 (body too large), 415 (not JSON), 401 (token) or 403 (foreign origin).

Safety. With a token (required whenever the server listens beyond the loopback interface) every
request must carry it: the ``X-HVSA-Token`` header, or ``?token=`` once, which sets an HttpOnly
cookie and redirects to the bare URL. Without one, requests must name a loopback ``Host``
(against DNS rebinding). Writes must be JSON from the page's own origin. Every answer carries a
strict Content-Security-Policy: the page loads nothing but its own files.
"""

from __future__ import annotations

import json
import secrets
from importlib import resources
from urllib.parse import urlsplit

import numpy as np
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hvsa.errors import InputError
from hvsa.web.payloads import Limits, parse_annotation
from hvsa.web.project import ConflictError, NotFoundError, Project

__all__ = ["create_app", "LOOPBACK_HOSTS", "TOKEN_HEADER", "TOKEN_COOKIE"]

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
TOKEN_HEADER = "x-hvsa-token"
TOKEN_COOKIE = "hvsa_token"

_STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                 ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml"}
_SECURITY_HEADERS = [
    (b"content-security-policy", b"default-src 'self'; img-src 'self' blob: data:; style-src 'self';"
     b" script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
]
_NO_STORE = {"cache-control": "no-store"}


def _load_static() -> dict[str, tuple[bytes, str]]:
    """The packaged page files, by name: read once, when the app is built."""
    out = {}
    for entry in resources.files("hvsa.web").joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in _STATIC_TYPES:
            out[entry.name] = (entry.read_bytes(), _STATIC_TYPES[suffix])
    return out


def _hostname(host_header: str) -> str:
    return (urlsplit(f"//{host_header}").hostname or "").lower()


class _Guard:
    """Pure ASGI middleware: Host and token checks, same-origin writes, security headers."""

    def __init__(self, app: ASGIApp, *, token: str | None, allowed_hosts: frozenset[str] | None) -> None:
        self.app = app
        self.token = token
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + _SECURITY_HEADERS
            await send(message)

        request = Request(scope)
        refused = self._refusal(request)
        if isinstance(refused, Response):
            await refused(scope, receive, send_secured)
            return
        await self.app(scope, receive, send_secured)

    def _refusal(self, request: Request) -> Response | None:
        host = request.headers.get("host", "")
        if self.allowed_hosts is not None and _hostname(host) not in self.allowed_hosts:
            return _error(400, f"unexpected Host {host!r}; open the address hvsa serve printed")
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("origin")
            if origin is not None and urlsplit(origin).netloc != host:
                return _error(403, "cross-origin writes are refused")
        if self.token is None:
            return None
        given = request.headers.get(TOKEN_HEADER) or request.cookies.get(TOKEN_COOKIE)
        if given is not None and secrets.compare_digest(given.encode(), self.token.encode()):
            return None
        query = request.query_params.get("token")
        if query is not None and secrets.compare_digest(query.encode(), self.token.encode()) and request.method == "GET":
            # trade the token in the address for a cookie, and drop it from the address bar
            response = RedirectResponse(request.url.path, status_code=303)
            response.set_cookie(TOKEN_COOKIE, self.token, httponly=True, samesite="strict")
            return response
        return _error(401, "this server needs the token printed by hvsa serve (open the printed address)")


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=_NO_STORE)


async def _json_body(request: Request, limit: int) -> object:
    """The request body as JSON, refusing other content types and bodies over ``limit`` bytes
    (before reading them when Content-Length says so)."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise HTTPException(415, f"expected Content-Type application/json, got {kind or 'none'}")
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise HTTPException(413, f"request body over {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"request body over {limit} bytes")
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise InputError(f"request body is not valid JSON ({e})") from None


def _png(image: np.ndarray) -> bytes:
    import cv2

    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_RGBA2BGRA if image.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buf.tobytes()


def _jpeg(frame: np.ndarray) -> bytes:
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return buf.tobytes()


def _rgba(labels: np.ndarray, palette: np.ndarray, ignore_index: int) -> np.ndarray:
    """uint8 (H, W) labels -> (H, W, 4) class colours, transparent on the ignore index."""
    out = np.empty((*labels.shape, 4), np.uint8)
    out[..., :3] = palette[labels]
    out[..., 3] = np.where(labels == ignore_index, 0, 255)
    return out


def create_app(project: Project, *, token: str | None = None, limits: Limits = Limits(),
               allowed_hosts: frozenset[str] | None = LOOPBACK_HOSTS) -> Starlette:
    """The ASGI app serving ``project``.

    Args:
        project: the project (started by the caller).
        token: required on every request when given.
        limits: request size caps.
        allowed_hosts: Host names accepted (None: any; use with a token only).
    """
    if token is None and allowed_hosts is None:
        raise InputError("a server that accepts any Host needs a token")
    static = _load_static()
    session = project.session
    palette = session.classes.palette()
    ignore = session.classes.ignore_index

    def page(request: Request) -> Response:
        body, kind = static["index.html"]
        return Response(body, media_type=kind, headers=_NO_STORE)

    def static_file(request: Request) -> Response:
        item = static.get(request.path_params["name"])
        if item is None or request.path_params["name"] == "index.html":
            return _error(404, "no such file")
        return Response(item[0], media_type=item[1], headers=_NO_STORE)

    def state(request: Request) -> Response:
        return JSONResponse(project.state(), headers=_NO_STORE)

    def frames(request: Request) -> Response:
        annotated = set(session.store.annotated_frames())
        return JSONResponse({
            "prediction_iteration": session.store.get_meta("prediction_iteration"),
            "confidence": project.frame_confidence(),
            "frames": [{"t": t, "name": name, "annotated": t in annotated} for t, name in enumerate(session.names)],
        }, headers=_NO_STORE)

    def frame_image(request: Request) -> Response:
        t = project.check_frame(request.path_params["t"])
        return Response(_jpeg(session.frames.read(t)), media_type="image/jpeg",
                        headers={"cache-control": "private, max-age=3600"})

    def prediction_image(request: Request) -> Response:
        t = project.check_frame(request.path_params["t"])
        try:
            labels, _ = session.prediction(t)
        except KeyError:
            raise NotFoundError(f"frame {t}: no prediction yet") from None
        return Response(_png(_rgba(labels, palette, ignore)), media_type="image/png", headers=_NO_STORE)

    def annotation_image(request: Request) -> Response:
        t = project.check_frame(request.path_params["t"])
        return Response(_png(_rgba(session.annotation_map(t), palette, ignore)), media_type="image/png",
                        headers=_NO_STORE)

    def sample(request: Request) -> Response:
        return JSONResponse(project.sample(request.path_params["p"]), headers=_NO_STORE)

    async def save(request: Request) -> Response:
        p = request.path_params["p"]
        body = await _json_body(request, limits.max_body_bytes)
        drawing = parse_annotation(body, hw=session.hw, num_classes=len(session.classes), limits=limits)
        ack = await run_in_threadpool(project.save, p, drawing)
        return JSONResponse(ack, headers=_NO_STORE)

    async def complete(request: Request) -> Response:
        await _json_body(request, limits.max_body_bytes)
        activity = await run_in_threadpool(project.complete_batch)
        return JSONResponse({"activity": activity.__dict__}, status_code=202, headers=_NO_STORE)

    async def export(request: Request) -> Response:
        await _json_body(request, limits.max_body_bytes)
        status = await run_in_threadpool(project.export)
        return JSONResponse({"export": status.__dict__}, status_code=202, headers=_NO_STORE)

    def on_http(request: Request, exc: HTTPException) -> Response:
        return _error(exc.status_code, str(exc.detail))

    def on_input(request: Request, exc: Exception) -> Response:
        status = 404 if isinstance(exc, NotFoundError) else 409 if isinstance(exc, ConflictError) else 400
        return _error(status, str(exc))

    routes = [
        Route("/", page, methods=["GET"]),
        Route("/static/{name:str}", static_file, methods=["GET"]),
        Route("/api/state", state, methods=["GET"]),
        Route("/api/frames", frames, methods=["GET"]),
        Route("/api/frames/{t:int}/image.jpg", frame_image, methods=["GET"]),
        Route("/api/frames/{t:int}/prediction.png", prediction_image, methods=["GET"]),
        Route("/api/frames/{t:int}/annotations.png", annotation_image, methods=["GET"]),
        Route("/api/samples/{p:int}", sample, methods=["GET"]),
        Route("/api/samples/{p:int}/annotation", save, methods=["PUT"]),
        Route("/api/batch/complete", complete, methods=["POST"]),
        Route("/api/export", export, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: on_http, InputError: on_input})
    app.add_middleware(_Guard, token=token, allowed_hosts=allowed_hosts)
    return app
