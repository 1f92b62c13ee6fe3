"""Why a charger could not be reached, in the words the broker check uses too.

Every transport (HTTP polling, the websocket, check-config --connect) says the same
thing for the same failure - refused, does not resolve, TLS, no route, timed out -
naming the host (never a token), instead of a library's class name.
"""

from __future__ import annotations

import errno

import aiohttp

_NO_ROUTE = {errno.EHOSTUNREACH, errno.ENETUNREACH, errno.ENETDOWN, errno.EHOSTDOWN}


def connection_failure(exc: BaseException) -> str:
    """What went wrong reaching a charger, in a few plain words."""
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return f"DNS: {exc.host} does not resolve"
    if isinstance(exc, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        host = getattr(exc, "host", "the charger")
        return f"TLS: {host}: the handshake or the certificate failed"
    if isinstance(exc, aiohttp.ClientConnectorError):
        where = f"{exc.host}:{exc.port}"
        code = exc.os_error.errno
        if code == errno.ECONNREFUSED or isinstance(exc.os_error, ConnectionRefusedError):
            return f"refused: nothing listens on {where}"
        if code in _NO_ROUTE:
            return f"network: no route to {exc.host}"
        if code == errno.ETIMEDOUT or isinstance(exc.os_error, TimeoutError):
            return f"timed out: no answer from {where}"
        return f"{where}: {exc.os_error.strerror or type(exc.os_error).__name__}"
    if isinstance(exc, aiohttp.WSServerHandshakeError):
        return f"refused: the websocket upgrade was answered with {exc.status}"
    if isinstance(exc, aiohttp.ClientResponseError):
        return f"refused ({exc.status})"
    if isinstance(exc, aiohttp.ServerDisconnectedError | ConnectionResetError):
        return "closed: the charger ended the connection before it answered"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"connection failed: {type(exc).__name__}"
