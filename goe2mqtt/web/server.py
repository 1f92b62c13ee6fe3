"""The HTTP server: aiohttp's, with its limits, a token when configured, and the routes.

Nothing it serves holds a secret: it reads the bridge through BridgeLook, which
carries none, and the token it checks is compared, never echoed.
"""

from __future__ import annotations

import hmac
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiohttp import web
from yarl import URL

from goe2mqtt.config.http import HttpSettings
from goe2mqtt.web import HttpUnavailable
from goe2mqtt.web.keys import LOOK, SCRAPER_SLOT, SETTINGS
from goe2mqtt.web.live import events
from goe2mqtt.web.page import charger_page, fleet_page
from goe2mqtt.web.probes import healthz, readyz
from goe2mqtt.web.view import BridgeLook

log = structlog.get_logger()

COOKIE = "goe2mqtt_token"
OPEN_PATHS = frozenset({"/healthz", "/readyz"})  # the kubelet has no token
# aiohttp's limits, spelt out: a request line or header past these is a 4xx, and an
# idle keep-alive connection is closed after KEEPALIVE seconds.
MAX_LINE = 8190
MAX_HEADERS = 64
KEEPALIVE = 15.0
MAX_BODY = 1024  # nothing here takes a body

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def cookie_value(token: str) -> str:
    """What the page's cookie holds: made from the token, not the token itself, so no
    response (the Set-Cookie after ?token=) and no browser's cookie store holds it."""
    return hmac.new(token.encode(), b"goe2mqtt status page cookie", "sha256").hexdigest()


def _authorized(request: web.Request, token: str) -> bool:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        return _matches(header.removeprefix("Bearer ").strip(), token)
    return _matches(request.cookies.get(COOKIE), cookie_value(token)) or _matches(
        request.query.get("token"), token
    )


def _matches(offered: str | None, expected: str) -> bool:
    """The token, compared in constant time. A header's bytes that are not UTF-8 come
    as lone surrogates, which cannot be encoded: a wrong token, never a 500."""
    if offered is None:
        return False
    try:
        given = offered.encode()
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(given, expected.encode())


@web.middleware
async def _guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    settings = request.app[SETTINGS]
    token = settings.token
    if token is not None and request.path not in OPEN_PATHS:
        expected = token.get_secret_value()
        if not _authorized(request, expected):
            raise web.HTTPUnauthorized(
                text="401: give the token (Authorization: Bearer ..., or ?token=... once in a"
                " browser)\n",
                headers={"WWW-Authenticate": 'Bearer realm="goe2mqtt"'},
            )
        if "token" in request.query:
            # Once in the URL, then a cookie: the address bar and history keep no token.
            query = {k: v for k, v in request.query.items() if k != "token"}
            # Always to a path here: "//host/" or "/\\host/" would send the browser away.
            here = URL("/" + request.rel_url.raw_path.lstrip("/\\"), encoded=True)
            redirect = web.HTTPSeeOther(str(here.with_query(query)))
            redirect.set_cookie(
                COOKIE, cookie_value(expected), httponly=True, samesite="Strict", path="/",
                secure=request.secure,
            )  # fmt: skip
            raise redirect
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    # Nothing runs or loads; the pages say which script and style of theirs may.
    response.headers.setdefault(
        "Content-Security-Policy", "default-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    )
    return response


async def _metrics(request: web.Request) -> web.StreamResponse:
    """/metrics: prometheus_client (~1 MiB) is imported by the first scrape, so a bridge
    that no Prometheus scrapes does not carry it."""
    from goe2mqtt.web.scrape import metrics_handler

    return await metrics_handler(request)


def make_app(look: BridgeLook, settings: HttpSettings) -> web.Application:
    app = web.Application(middlewares=[_guard], client_max_size=MAX_BODY)
    app[LOOK] = look
    app[SETTINGS] = settings
    app[SCRAPER_SLOT] = {}
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/", fleet_page)
    app.router.add_get("/charger/{name}", charger_page)
    app.router.add_get("/events", events)
    return app


class HttpServer:
    """Started and stopped by the bridge; its address once started (port 0: any)."""

    def __init__(self, look: BridgeLook, settings: HttpSettings) -> None:
        self._settings = settings
        self._runner = web.AppRunner(
            make_app(look, settings),
            access_log=None,  # a request per scrape and probe would drown the log
            handle_signals=False,
            keepalive_timeout=KEEPALIVE,
            max_line_size=MAX_LINE,
            max_field_size=MAX_LINE,
            max_headers=MAX_HEADERS,
            shutdown_timeout=1.0,
        )
        self.address: tuple[str, int] | None = None

    async def start(self) -> None:
        settings = self._settings
        await self._runner.setup()
        site = web.TCPSite(self._runner, settings.host, settings.port, reuse_address=True)
        try:
            await site.start()
        except (OSError, socket.gaierror) as exc:
            await self._runner.cleanup()
            # asyncio words it "error while attempting to bind on address ...": the
            # system's own words are the line's point.
            why = os.strerror(exc.errno) if exc.errno else str(exc)
            raise HttpUnavailable(
                f"http.listen: cannot listen on {settings.listen}: {why} (give another"
                " host:port, or http.enabled: false)"
            ) from None
        addresses: list[Any] = list(self._runner.addresses)  # port 0: the one taken
        host, port = addresses[0][:2] if addresses else (settings.host, settings.port)
        self.address = (str(host), int(port))
        log.info("http_listening", listen=f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
                 token=settings.token is not None)  # fmt: skip

    async def stop(self) -> None:
        await self._runner.cleanup()
