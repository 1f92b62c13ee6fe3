"""A TCP proxy between a client and the broker that holds the broker's answer to one publish.

It reads the MQTT packets going through (fixed header and remaining length; a PUBLISH's
topic and packet id) and, once armed, lets the first PUBLISH to a given topic reach the
broker but holds what the broker sends back from then on: its PUBACK or PUBREC
(``phase="ack"``), or, for QoS 2, its PUBCOMP after the client's PUBREL went through
(``phase="pubcomp"``). The broker has taken the message; the client does not know.
``phase="pubrel"`` instead drops the client's PUBREL (and all it sends after it): the
client knows the broker took the message, the broker waits for the word to hand it on.
``cut()`` then ends the connection (the held bytes are dropped), as a dying network,
broker or machine does. Used by tests only.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 3, 4, 5, 6, 7


def split_packets(buffer: bytearray) -> list[bytes]:
    """Take the complete MQTT packets off the front of ``buffer``."""
    packets = []
    while len(buffer) >= 2:
        length, multiplier, pos = 0, 1, 1
        while True:
            if pos >= len(buffer):
                return packets
            byte = buffer[pos]
            length += (byte & 0x7F) * multiplier
            multiplier *= 128
            pos += 1
            if not byte & 0x80:
                break
        if len(buffer) < pos + length:
            return packets
        packets.append(bytes(buffer[: pos + length]))
        del buffer[: pos + length]
    return packets


def packet_body(packet: bytes) -> bytes:
    """A packet without its fixed header (type and flags, remaining length)."""
    pos = 1
    while packet[pos] & 0x80:
        pos += 1
    return packet[pos + 1 :]


def publish_topic_and_id(packet: bytes) -> tuple[str, int | None]:
    body = packet_body(packet)
    size = int.from_bytes(body[:2], "big")
    topic = body[2 : 2 + size].decode("utf-8", "replace")
    qos = (packet[0] >> 1) & 3
    mid = int.from_bytes(body[2 + size : 4 + size], "big") if qos else None
    return topic, mid


def packet_id(packet: bytes) -> int:
    return int.from_bytes(packet_body(packet)[:2], "big")


class ProxyServer:
    """A proxy's listening socket on loopback, its connections' writers and tasks."""

    def __init__(self, broker_host: str, broker_port: int) -> None:
        self._broker = (broker_host, broker_port)
        self.port = 0
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        self.cut()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self) -> None:
        """End every connection now; what was held is dropped."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _pump(
        self,
        writers: tuple[asyncio.StreamWriter, asyncio.StreamWriter],
        pumps: tuple[Coroutine[Any, Any, None], Coroutine[Any, Any, None]],
        *,
        reset: bool,
    ) -> None:
        """One connection's two directions until either ends; then both sockets end
        (reset, or closed so that the broker still reads what it has not yet)."""
        self._writers |= set(writers)
        tasks = {asyncio.create_task(pump) for pump in pumps}
        self._tasks |= tasks
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for writer in writers:
            if reset:
                writer.transport.abort()
            else:
                writer.close()
            self._writers.discard(writer)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks -= tasks


class HoldingProxy(ProxyServer):
    def __init__(self, broker_host: str, broker_port: int, topic: str, phase: str) -> None:
        assert phase in ("ack", "pubrel", "pubcomp")
        super().__init__(broker_host, broker_port)
        self._topic = topic
        self._phase = phase
        self.accepting = True  # False: connections are closed at once (the broker is "down")
        self.held = asyncio.Event()  # the broker's answer is being held
        self.armed = False
        self._done = False  # armed once: afterwards the proxy is transparent

    async def _serve(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if not self.accepting:
            client_w.transport.abort()
            return
        try:
            broker_r, broker_w = await asyncio.open_connection(*self._broker)
        except OSError:
            client_w.transport.abort()
            return
        # Per connection: hold the broker's bytes from the moment this turns True.
        state: dict[str, object] = {"holding": False, "mid": None}
        # Closed, not reset: what the broker has not read yet it still reads (a frozen
        # broker, thawed, handles the publishes queued for it).
        await self._pump((client_w, broker_w), (self._upstream(client_r, broker_w, state),
                         self._downstream(broker_r, client_w, state)), reset=False)  # fmt: skip

    async def _upstream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: dict[str, object]
    ) -> None:
        buffer = bytearray()
        while data := await reader.read(65536):
            buffer += data
            for packet in split_packets(buffer):
                kind = packet[0] >> 4
                if state["holding"] == "up":
                    continue  # dropped: the broker never gets it
                if kind == PUBREL and self._phase == "pubrel" and state["mid"] == packet_id(packet):
                    state["holding"] = "up"
                    self.held.set()
                    continue
                if kind == PUBLISH and self.armed and not self._done:
                    topic, mid = publish_topic_and_id(packet)
                    if topic == self._topic:
                        self._done = True
                        state["mid"] = mid
                        state["holding"] = self._phase == "ack"
                elif kind == PUBREL and state["mid"] == packet_id(packet):
                    state["holding"] = self._phase == "pubcomp"
                writer.write(packet)
            await writer.drain()

    async def _downstream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, state: dict[str, object]
    ) -> None:
        buffer = bytearray()
        while data := await reader.read(65536):
            buffer += data
            for packet in split_packets(buffer):
                if state["holding"] is True:
                    kind = packet[0] >> 4
                    if kind in (PUBACK, PUBREC, PUBCOMP) and packet_id(packet) == state["mid"]:
                        self.held.set()  # the answer to the armed publish
                    continue  # held: the client never gets it
                writer.write(packet)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
