"""paho's output, joined: what one loop turn queued leaves in one send().

paho sends each packet with a send() of its own, and aiomqtt, asked for a write, wakes
the loop from "another thread" (call_soon_threadsafe) and adds and removes a writer for
the socket each time. A poll of a thousand chargers queues thousands of small PUBLISHes
and PUBACKs: those calls were much of the bridge's CPU beyond the bare poll loop (issue
32). JoinedWriter takes paho's socket-write callbacks over: the packets queued in one
loop turn go out joined, up to JOIN_AT_MOST bytes a send(), in paho's order; what the
kernel does not take waits, with a writer of ours on the socket, until it does. Every
packet paho makes (CONNECT, PUBLISH, PUBACK/PUBREC/PUBREL/PUBCOMP, PINGREQ, DISCONNECT)
leaves this way, none around it.

Bounded: it takes more from paho only when the kernel took all it held, so a broker
that stops reading leaves at most one joined buffer here; the rest waits in paho, as
much as the sender's window lets out, and a PUBACK for each QoS 1 message the broker
still sends: past MAX_QUEUED_PACKETS of them the connection ends. Knows MQTT and
nothing of go-e.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
import threading
from typing import Any

import structlog
from paho.mqtt.client import (
    DISCONNECT,
    MQTT_ERR_CONN_LOST,
    MQTT_ERR_SUCCESS,
    PUBLISH,
    Client,
    time_func,
)
from paho.mqtt.enums import _ConnectionState
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

log = structlog.get_logger()

# A send() takes at most this much joined (a larger packet goes alone): what a loopback
# or LAN socket takes in one go, and one turn's worth of a thousand chargers' changes.
JOIN_AT_MOST = 64 * 1024

# Linux: ACK what came at once, not up to ~40 ms later. A broker with Nagle on (Mosquitto's
# default) holds its next small packet (our PUBACK) until our ACK of the last one: a
# burst of 16 QoS 1 publishes took p50 44 ms, with this 1.4-2.1 ms. The kernel leaves
# quick-ACK mode on its own, so it is armed again after every read.
QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)

# Packets paho may hold for a socket the kernel refuses. Ours are few (the sender's window,
# the results in flight); a PUBACK for each QoS 1 message the broker sends is not: a
# broker that stops reading and goes on sending (past our Receive Maximum) queued one
# each, without bound. A compliant one stops at 65 535 unacknowledged.
MAX_QUEUED_PACKETS = 100_000


# What JoinedWriter uses of paho's client beyond its public API (paho-mqtt 2.1-2.2): a
# release without one of them is written to as paho itself would, unjoined (usable()).
PAHO_PARTS = (
    "_out_packet", "_sock", "_registered_write", "_loop_rc_handle", "_do_on_disconnect",
    "_sock_close", "_state", "_userdata", "_in_callback_mutex", "_last_msg_out",
)  # fmt: skip


def usable(paho: Client) -> bool:
    """Whether this paho client has every part JoinedWriter relies on."""
    return all(hasattr(paho, part) for part in PAHO_PARTS) and hasattr(
        _ConnectionState, "MQTT_CS_DISCONNECTING"
    )


class JoinedWriter:
    """Writes everything paho queues on ``paho``'s socket, joined per loop turn.
    Made on ``loop``'s thread, after aiomqtt set its callbacks (it replaces two)."""

    def __init__(self, paho: Client, loop: asyncio.AbstractEventLoop) -> None:
        self._paho = paho
        self._loop = loop
        self._thread = threading.get_ident()
        # What is being sent, on which socket, from where; after ssl's "want write" the
        # same object is offered again (OpenSSL wants the same buffer and length).
        self._buffer = b""
        self._offer: bytes | memoryview = b""
        self._sent = 0
        self._sock: Any = None
        # (end in _buffer, paho's packet) for packets paho acts on once written: a QoS 0
        # PUBLISH (its on_publish), a DISCONNECT (the connection ends).
        self._marks: collections.deque[tuple[int, Any]] = collections.deque()
        self._scheduled = False
        self._watching: int | None = None  # the fd our writer is on
        self._want_read = False  # TLS must read before it can write again
        # The socket TCP_QUICKACK was last judged for, and whether it takes it.
        self._quickack: tuple[Any, bool] = (None, False)
        paho.on_socket_register_write = self._register
        paho.on_socket_unregister_write = self._unregister

    @property
    def held(self) -> int:
        """Bytes taken from paho that the kernel has not taken yet."""
        return len(self._buffer) - self._sent

    def _register(self, client: Any, userdata: Any, sock: Any) -> None:
        # paho queued a packet (or its socket wants writing). Its connect runs in
        # aiomqtt's executor thread and queues the CONNECT there.
        if threading.get_ident() == self._thread:
            self._schedule()
        else:
            self._loop.call_soon_threadsafe(self._schedule)

    def _unregister(self, client: Any, userdata: Any, sock: Any) -> None:
        # paho closes the socket (told before it closes it): nothing taken for it goes
        # anywhere else. paho's reconnect forgets its own queue the same way.
        if threading.get_ident() == self._thread:
            self._drop()
        else:
            self._loop.call_soon_threadsafe(self._drop)

    def _schedule(self) -> None:
        if self._scheduled or self._watching is not None or self._want_read:
            return  # the flush to come, or the socket's readiness, takes it along
        self._scheduled = True
        self._loop.call_soon(self._flush)

    def after_read(self) -> None:
        """paho read from the socket: quick ACKs armed again; a TLS write that had to
        wait for a read is tried again."""
        sock: Any = self._paho._sock
        if QUICKACK is not None and sock is not None:
            if self._quickack[0] is not sock:
                self._quickack = (sock, _is_tcp(sock))
            if self._quickack[1]:
                try:
                    sock.setsockopt(socket.IPPROTO_TCP, QUICKACK, 1)
                except OSError:  # not taken on this socket: not tried again
                    self._quickack = (sock, False)
        if self._want_read:
            self._want_read = False
            self._schedule()
        queued = len(self._paho._out_packet)
        if queued > MAX_QUEUED_PACKETS and self._watching is not None:
            log.warning("mqtt_broker_not_reading", queued_packets=queued,
                        action="connection ended")  # fmt: skip
            self._drop()
            self._paho._loop_rc_handle(MQTT_ERR_CONN_LOST)

    def _flush(self) -> None:
        self._scheduled = False
        try:
            self._write()
        except Exception:
            # Raised into the loop, it would leave paho's "registered" flag set and
            # nothing would be written again: the connection ends instead, as aiomqtt
            # ends it when paho's loop_write raises.
            log.exception("mqtt_write_failed")
            self._drop()
            self._paho._loop_rc_handle(MQTT_ERR_CONN_LOST)

    def _write(self) -> None:
        paho = self._paho
        sock: Any = paho._sock
        if sock is None:
            self._drop()
            return
        if sock is not self._sock:
            self._drop()  # a new connection: nothing taken for the old one goes out
            self._sock = sock
        while self._buffer or self._join():
            try:
                sent = sock.send(self._offer)
            except (ssl.SSLWantWriteError, BlockingIOError):
                self._watch(sock)
                return
            except ssl.SSLWantReadError:
                self._unwatch()
                self._want_read = True
                return
            except OSError as exc:  # reset, broken pipe: the connection is gone
                log.debug("mqtt_write_lost", error=str(exc))
                self._drop()
                # paho's own way: the socket closed, on_disconnect told (aiomqtt's end
                # of the connection, the session's reconnect); what the broker did not
                # acknowledge, paho sends again on the next connection.
                paho._loop_rc_handle(MQTT_ERR_CONN_LOST)
                return
            paho._last_msg_out = time_func()  # for paho's keep-alive
            self._sent += sent
            if not self._tell():
                return  # a DISCONNECT left: the connection is over
            if self._sent >= len(self._buffer):
                self._buffer, self._offer, self._sent = b"", b"", 0
            else:
                self._offer = memoryview(self._buffer)[self._sent :]
        self._unwatch()
        paho._registered_write = False  # paho tells us of its next packet again

    def _join(self) -> bool:
        """Take what paho queued, in its order, up to JOIN_AT_MOST bytes."""
        queue = self._paho._out_packet
        parts: list[bytes | bytearray] = []
        size = 0
        while queue:
            packet = queue[0]
            data = packet["packet"]
            if packet["pos"]:
                data = data[packet["pos"] :]
            if parts and size + len(data) > JOIN_AT_MOST:
                break
            queue.popleft()
            parts.append(data)
            size += len(data)
            command = packet["command"] & 0xF0
            if command == DISCONNECT or (command == PUBLISH and packet["qos"] == 0):
                self._marks.append((size, packet))
            if command == DISCONNECT:
                break  # paho sends nothing after it: the socket closes
        if not parts:
            return False
        self._buffer = b"".join(parts)
        self._offer, self._sent = self._buffer, 0
        return True

    def _tell(self) -> bool:
        """paho's part for the packets now fully written; False if a DISCONNECT was."""
        paho = self._paho
        while self._marks and self._marks[0][0] <= self._sent:
            _, packet = self._marks.popleft()
            if packet["command"] & 0xF0 == DISCONNECT:
                self._disconnected()
                return False
            on_publish: Any = paho.on_publish  # aiomqtt's: paho's callback API version 2
            if on_publish is not None:
                try:
                    with paho._in_callback_mutex:
                        on_publish(
                            paho,
                            paho._userdata,
                            packet["mid"],
                            ReasonCode(PacketTypes.PUBACK),
                            Properties(PacketTypes.PUBACK),  # type: ignore[no-untyped-call]
                        )
                except Exception:  # raised into paho, it would end the connection
                    log.exception("mqtt_on_publish_failed", packet_id=packet["mid"])
            if packet["info"] is not None:
                packet["info"]._set_as_published()
        return True

    def _disconnected(self) -> None:
        # What paho does once its DISCONNECT is written.
        paho = self._paho
        paho._do_on_disconnect(packet_from_broker=False, v1_rc=MQTT_ERR_SUCCESS)
        paho._sock_close()  # tells _unregister: dropped
        if paho._state == _ConnectionState.MQTT_CS_DISCONNECTING:
            paho._state = _ConnectionState.MQTT_CS_DISCONNECTED

    def _drop(self) -> None:
        """Forget what was taken for a connection that is over. A QoS 0 publish among it
        is lost, as paho's reconnect counts those in its own queue."""
        self._unwatch()
        self._want_read = False
        for _, packet in self._marks:
            if packet["info"] is not None:
                packet["info"].rc = MQTT_ERR_CONN_LOST
                packet["info"]._set_as_published()
        self._marks.clear()
        self._buffer, self._offer, self._sent = b"", b"", 0
        self._sock = None

    def _watch(self, sock: Any) -> None:
        if self._watching is None:
            self._watching = sock.fileno()
            self._loop.add_writer(self._watching, self._flush)

    def _unwatch(self) -> None:
        if self._watching is not None:
            self._loop.remove_writer(self._watching)
            self._watching = None


def _is_tcp(sock: Any) -> bool:
    """A unix socket or paho's websocket wrapper has no ACKs to hurry."""
    return isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6)
