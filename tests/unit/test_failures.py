"""Every transport names a connection failure in the same plain words."""

from __future__ import annotations

import errno
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from goe2mqtt.goe.failures import connection_failure

KEY: Any = SimpleNamespace(host="wallbox.lan", port=80, ssl=False)


def _connector(os_error: OSError) -> aiohttp.ClientConnectorError:
    return aiohttp.ClientConnectorError(KEY, os_error)


@pytest.mark.parametrize(
    ("error", "words"),
    [
        (_connector(ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed")),
         "refused: nothing listens on wallbox.lan:80"),
        (aiohttp.ClientConnectorDNSError(KEY, OSError(-2, "Name or service not known")),
         "DNS: wallbox.lan does not resolve"),
        (_connector(OSError(errno.EHOSTUNREACH, "No route to host")),
         "network: no route to wallbox.lan"),
        (_connector(OSError(errno.ETIMEDOUT, "Connection timed out")),
         "timed out: no answer from wallbox.lan:80"),
        (aiohttp.ClientConnectorCertificateError(KEY, ValueError("bad certificate")),
         "TLS: wallbox.lan: the handshake or the certificate failed"),
        (aiohttp.ServerDisconnectedError(),
         "closed: the charger ended the connection before it answered"),
        (TimeoutError(), "timed out"),
    ],
)  # fmt: skip
def test_plain_words_for_each_failure(error: BaseException, words: str) -> None:
    assert connection_failure(error) == words


def test_a_refused_websocket_upgrade_names_the_status() -> None:
    request: Any = SimpleNamespace(real_url="ws://wallbox.lan/ws")
    error = aiohttp.WSServerHandshakeError(request, (), status=503, message="busy")
    assert connection_failure(error) == "refused: the websocket upgrade was answered with 503"
