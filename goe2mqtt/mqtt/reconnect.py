"""Losing the broker and coming back: how long to wait, and what to tell the operator.

The session's reconnect policy, apart from what a connection does (mqtt/session.py): the
delay before each attempt, connections lost too soon after they were made (flapping:
someone else takes our client id), and why a connection failed or ended, logged with a
hint where retrying will not help. Knows MQTT and nothing of go-e.
"""

from __future__ import annotations

from collections.abc import Sequence

import aiomqtt
import structlog

from goe2mqtt.mqtt.client import MqttOptions, connect_cause

log = structlog.get_logger()

RECONNECT_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)
# Connections lost this soon after they were made, this many times in a row: someone
# else keeps taking them (the same client_id elsewhere) or the broker refuses us.
FLAP_SECONDS = 10.0
FLAP_COUNT = 3


def reconnect_delay(delays: Sequence[float], attempt: int) -> float:
    """The wait before attempt ``attempt`` (0 after a connection was made): each of
    ``delays`` in turn, then the last one for as long as it takes."""
    return delays[min(attempt, len(delays) - 1)]


class Reconnects:
    """The attempts since the last connection was made, and the short-lived ones in a row."""

    def __init__(self, options: MqttOptions, delays: Sequence[float]) -> None:
        self._options = options
        self._reconnect_delays = tuple(delays)
        self._attempt = 0
        self._flaps = 0

    def connected(self) -> None:
        self._attempt = 0

    def lost(self, exc: aiomqtt.MqttError, lasted: float | None, backlog: int) -> tuple[str, float]:
        """A connection failed (``lasted`` None) or ended after ``lasted`` s: logged; its
        cause and the delay before the next attempt."""
        options = self._options
        delay = reconnect_delay(self._reconnect_delays, self._attempt)
        self._attempt += 1
        error = str(exc)
        self._flaps = self._flaps + 1 if lasted is not None and lasted < FLAP_SECONDS else 0
        if self._flaps >= FLAP_COUNT:
            delay = self._reconnect_delays[-1]  # do not fight for the id
            log.error(
                "mqtt_flapping",
                broker=f"{options.host}:{options.port}",
                connections_lost=self._flaps,
                hint=self._flap_hint(),
                retry_in=delay,
            )
        cause = connect_cause(error)
        if cause.startswith("TLS"):
            # Retrying will not fix a certificate: say what to look at.
            log.error(
                "mqtt_tls_failed",
                broker=f"{options.host}:{options.port}",
                error=error,
                hint="check mqtt.tls (ca_file, host name, client certificate)",
                retry_in=delay,
            )
        else:
            log.warning(
                "mqtt_disconnected" if lasted is not None else "mqtt_connect_failed",
                broker=f"{options.host}:{options.port}",
                cause=cause,
                error=error,
                retry_in=delay,
                backlog=backlog,
            )
        return cause, delay

    def _flap_hint(self) -> str:
        # Mosquitto ends a taken-over connection and a restarting broker's alike (a
        # reset, "unspecified error"), MQTT 5 or not. What differs: after a restart the
        # broker is gone for a moment, so a connect fails and the count starts again;
        # a takeover lets every reconnect succeed, and takes it away again.
        return (
            f"each connection ended within {FLAP_SECONDS:.0f} s and the next one succeeded"
            f" at once: most likely another client uses client_id"
            f" {self._options.client_id!r} (give every instance its own mqtt.client_id);"
            " else the broker drops us (see its log)"
        )
