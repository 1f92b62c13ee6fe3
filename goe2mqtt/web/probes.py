"""/healthz and /readyz: one line of JSON each, for the kubelet and container engines.

Alive (/healthz) is what a restart could fix: the event loop answers (this handler
runs on it) and the bridge's tasks run. A broker that is down is not: restarting the
bridge would not bring it back, so it only makes /readyz fail.
"""

from __future__ import annotations

import json

from aiohttp import web

from goe2mqtt.web.keys import LOOK
from goe2mqtt.web.view import BridgeLook


def _answer(reasons: list[str]) -> web.Response:
    body = json.dumps({"status": "failing" if reasons else "ok", "reasons": reasons})
    return web.Response(
        text=body + "\n",
        status=503 if reasons else 200,
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


def liveness(look: BridgeLook) -> list[str]:
    return look.failing()


def readiness(look: BridgeLook) -> list[str]:
    reasons = liveness(look)
    if not look.mqtt_connected:
        reasons.append("not connected to the MQTT broker")
    elif look.mqtt_unanswered > look.mqtt_keepalive / 2:
        # Frozen or gone: the connection says so only after up to twice the keep-alive.
        reasons.append(f"the MQTT broker has not answered for {look.mqtt_unanswered:.0f} s")
    error = look.journal_error
    if error is not None:
        reasons.append(f"the command journal cannot write: {error}")
    return reasons


async def healthz(request: web.Request) -> web.Response:
    return _answer(liveness(request.app[LOOK]))


async def readyz(request: web.Request) -> web.Response:
    return _answer(readiness(request.app[LOOK]))
