"""paho's output joined per loop turn (mqtt/writes.py): one send() for a turn's packets,
in paho's order through partial sends, a reset in the middle, a clean stop's DISCONNECT
after what was queued, and bounded against a broker that stops reading (plain and TLS).

The session client's socket is wrapped by ``Wire``: it records every send() and can take
a few bytes at a time, refuse, or break the connection in the middle of a buffer.
"""

from __future__ import annotations

import asyncio
import math
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from goe2mqtt.mqtt.client import MqttOptions
from goe2mqtt.mqtt.session import MqttSession, Subscription
from goe2mqtt.mqtt.session_client import SessionClient, new_client
from goe2mqtt.mqtt.writes import JOIN_AT_MOST
from goe2mqtt.sim.broker import MosquittoBroker

from ..certs import make_certificates, mosquitto_tls
from ..conftest import WAIT, MqttProbe, cancel, until
from ..mqtt_proxy import PUBLISH, split_packets

DISCONNECT = 14


class Wire:
    """paho's socket with every send() recorded. ``take``: at most that many bytes a
    call; ``refuse_every``: every n-th call raises BlockingIOError (the kernel's buffer
    full); ``reset_at``: the first send() of more bytes than that writes half and the
    connection breaks (ConnectionResetError), as a broker's RST in the middle does."""

    def __init__(
        self,
        sock: Any,
        *,
        take: int | None = None,
        refuse_every: int = 0,
        reset_at: int | None = None,
    ) -> None:
        self.sock = sock
        self.take = take
        self.refuse_every = refuse_every
        self.reset_at = reset_at
        self.calls = 0
        self.sent: list[bytes] = []  # what each send() the kernel took, in order
        self.resets = 0
        self.full = 0  # calls the kernel (or TLS) refused for a full buffer
        self.refused_last = False  # the last call was one of them
        # After ssl's "want write", OpenSSL wants the same buffer again (object, length).
        self.want_write: Any = None
        self.moved_after_want_write = 0

    def send(self, data: Any) -> int:
        self.calls += 1
        self.refused_last = False
        if self.want_write is not None:
            if data is not self.want_write[0] or len(data) != self.want_write[1]:
                self.moved_after_want_write += 1
            self.want_write = None
        if self.refuse_every and self.calls % self.refuse_every == 0:
            raise BlockingIOError
        if self.reset_at is not None and len(data) > self.reset_at:
            self.reset_at = None
            self.resets += 1
            half = bytes(data[: len(data) // 2])
            self.sock.send(half)
            self.sent.append(half)
            self.sock.shutdown(socket.SHUT_RDWR)
            raise ConnectionResetError(104, "Connection reset by peer")
        chunk = data if self.take is None else data[: self.take]
        try:
            sent = int(self.sock.send(chunk))
        except ssl.SSLWantWriteError:
            self.full += 1
            self.refused_last = True
            self.want_write = (data, len(data))
            raise
        except BlockingIOError:
            self.full += 1
            self.refused_last = True
            raise
        self.sent.append(bytes(chunk[:sent]))
        return sent

    def __getattr__(self, name: str) -> Any:
        return getattr(self.sock, name)

    def packets(self) -> list[list[bytes]]:
        """The MQTT packets each send() carried (whole ones; a send of a part: none)."""
        return [split_packets(bytearray(data)) for data in self.sent]

    def stream(self) -> list[bytes]:
        return split_packets(bytearray(b"".join(self.sent)))


def wire(client: SessionClient, **kwargs: Any) -> Wire:
    """Wrap the connected client's socket (between loop turns: nothing half written)."""
    paho = client._client
    wrapped = Wire(paho._sock, **kwargs)
    paho._sock = wrapped  # type: ignore[assignment]
    return wrapped


def options(broker: MosquittoBroker, name: str, tls: ssl.SSLContext | None = None) -> MqttOptions:
    return MqttOptions(
        host=broker.host,
        port=broker.port,
        client_id=f"joined-{name}",
        availability_topic=f"joined/{name}/availability",
        tls=tls,
        bulk_rate=0,
    )


def kinds(packets: list[bytes]) -> list[int]:
    return [packet[0] >> 4 for packet in packets]


async def test_a_loop_turns_publishes_leave_in_one_send(broker: MosquittoBroker) -> None:
    # paho sent each packet with a send() of its own (20 here), aiomqtt waking the loop
    # for the first of them from "another thread".
    async with MqttProbe(broker.host, broker.port, ["joined/one/#"]) as probe:
        async with new_client(options(broker, "one")) as client:
            count = client.in_flight_cap  # all of them leave at once (Mosquitto's 20)
            sent = wire(client)
            infos = [
                client._client.publish(f"joined/one/{n}", b"x" * 50, qos=1) for n in range(count)
            ]
            await until(lambda: all(info.is_published() for info in infos), "every PUBACK")
        await until(lambda: len(probe.messages) == count, "every message at the probe")
    assert kinds(sent.packets()[0]) == [PUBLISH] * count
    assert [m.topic for m in probe.messages] == [f"joined/one/{n}" for n in range(count)]


async def test_order_is_kept_through_partial_sends_and_a_full_socket(
    broker: MosquittoBroker,
) -> None:
    """A guarantee test (paho kept it too): a socket that takes 7 bytes a call and
    refuses every third one. Every message arrives, in the order it was published."""
    count = 200  # far past paho's in-flight cap: the rest leaves as PUBACKs come
    async with MqttProbe(broker.host, broker.port, ["joined/order/#"]) as probe:
        async with new_client(options(broker, "order")) as client:
            sent = wire(client, take=7, refuse_every=3)
            async with asyncio.timeout(3 * WAIT):
                await asyncio.gather(
                    *(
                        client.publish(f"joined/order/{n}", str(n).encode(), qos=1)
                        for n in range(count)
                    )
                )
        await until(lambda: len(probe.messages) == count, "every message at the probe")
    assert [m.payload for m in probe.messages] == [str(n).encode() for n in range(count)]
    published = [p for p in sent.stream() if p[0] >> 4 == PUBLISH]
    assert len(published) == count


async def test_a_reset_in_the_middle_of_a_buffer_loses_no_topic(broker: MosquittoBroker) -> None:
    """A guarantee test (paho's per-packet sends kept it too): the connection breaks
    half way through a send; the session reconnects and every retained topic arrives,
    with its last value."""
    topics = [f"joined/reset/t{n}" for n in range(300)]
    async with MqttProbe(broker.host, broker.port, ["joined/reset/#"]) as probe:
        session = MqttSession(
            options(broker, "reset"),
            [Subscription("joined/reset/cmd/+", qos=1)],
            reconnect_delays=(0.1,),
        )
        running = asyncio.create_task(session.run(lambda message: None))
        try:
            await until(lambda: session.connected, "connected")
            await session.settled()
            sent = wire(session._client_of_session(), reset_at=500)
            for topic in topics:  # each packet past reset_at: paho's per-packet sends too
                await session.publish_retained(topic, value(topic))
            await until(lambda: sent.resets == 1, "the reset")
            await until(lambda: session.connections >= 2, "connected again")
            for topic in topics:
                await probe.wait_text(topic, value(topic))
        finally:
            session.stop()
            await cancel(running)
    assert session.disconnects  # the reset was a lost connection, told as one


def value(topic: str) -> str:
    return f"{topic}={'v' * 600}"


async def test_a_clean_stops_disconnect_leaves_after_what_was_queued(
    broker: MosquittoBroker,
) -> None:
    # paho sent the DISCONNECT with a send() of its own, after one per publish; joined,
    # it is the last packet of the same send().
    count = 20
    async with MqttProbe(broker.host, broker.port, ["joined/bye/#"]) as probe:
        async with new_client(options(broker, "bye")) as client:
            sent = wire(client)
            for n in range(count):
                client._client.publish(f"joined/bye/{n}", b"last words", qos=0)
        await until(lambda: len(probe.messages) == count, "every message at the probe")
    assert kinds(sent.packets()[0]) == [PUBLISH] * count + [DISCONNECT]
    assert client._client._sock is None
    assert [m.topic for m in probe.messages] == [f"joined/bye/{n}" for n in range(count)]


@pytest.fixture(params=["plain", "tls"])
def frozen(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[MosquittoBroker, Any]]:
    """A broker of the test's own (it is frozen), plain or TLS, and the client's context."""
    if request.param == "plain":
        with MosquittoBroker() as running:
            yield running, None
        return
    certificates = make_certificates(tmp_path)
    with MosquittoBroker(extra_config=mosquitto_tls(certificates)) as running:
        yield running, ssl.create_default_context(cafile=str(certificates.ca))


async def test_a_frozen_broker_holds_the_writer_bounded_and_everything_arrives_after(
    frozen: tuple[MosquittoBroker, ssl.SSLContext | None],
) -> None:
    """A guarantee test (paho kept it too, but for the TLS buffer's identity): a broker
    that stops reading (SIGSTOP) fills the socket; the writer then waits for the socket,
    never trying again in a loop, and holds at most one joined buffer; paho holds what
    the window let out. After SIGCONT every message arrives, once each. TLS: after
    ssl's "want write" the same buffer is offered again."""
    broker, tls = frozen
    # Two windows of 512 KiB messages: one is 10 MiB, past what loopback takes unread
    # (4 MiB of send buffer, the frozen receiver's buffer not growing).
    size, count = 512 * 1024, 40
    payloads = [bytes([n]) * size for n in range(count)]
    async with MqttProbe(broker.host, broker.port, ["joined/frozen/#"], tls_context=tls) as probe:
        async with new_client(options(broker, "frozen", tls)) as client:
            writer = getattr(client, "_writes", None)  # none on paho's own writes
            paho = client._client
            sent = wire(client)
            broker.pause()
            try:
                publishing = asyncio.gather(
                    *(
                        client.publish(f"joined/frozen/{n}", payload, qos=1, timeout=math.inf)
                        for n, payload in enumerate(payloads)
                    )
                )
                await until(lambda: sent.refused_last, "the socket full")
                calls = sent.calls
                for _ in range(100):
                    await asyncio.sleep(0)  # loop turns: a writer that spins sends in them
                assert sent.calls == calls
                held = 0 if writer is None else writer.held
                assert held <= JOIN_AT_MOST + size
                queued = sum(len(packet["packet"]) for packet in paho._out_packet)
                assert queued + held <= client.in_flight_cap * (size + 100)
            finally:
                broker.resume()
            async with asyncio.timeout(6 * WAIT):
                await publishing
        await until(lambda: len(probe.messages) == count, "every message at the probe")
    assert sorted(m.topic for m in probe.messages) == sorted(
        f"joined/frozen/{n}" for n in range(count)
    )
    assert all(m.payload == payloads[int(m.topic.rsplit("/", 1)[1])] for m in probe.messages)
    assert sent.full
    assert sent.moved_after_want_write == 0
