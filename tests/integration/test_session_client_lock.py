"""The session's one client connects again whatever became of the last connection.

aiomqtt holds a lock while a connection is up; an exit that times out waiting for its
DISCONNECT to leave (a broker that reads nothing, a loop busy for longer than the
client's timeout) or an entry cancelled in the middle left it held, and every connect
after failed with "The client context manager is reusable, but not reentrant". No
broker here: paho's connect and disconnect are replaced by fakes that answer, or not.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
from paho.mqtt.client import MQTT_ERR_SUCCESS

from goe2mqtt.mqtt.client import MqttOptions
from goe2mqtt.mqtt.session_client import SessionClient, new_client


class FakeBroker:
    """paho's connect in the executor thread: a loopback connection, and the CONNACK told to the
    loop (or held back); paho's disconnect: queued, never leaving (``silent``)."""

    def __init__(self, client: SessionClient, loop: asyncio.AbstractEventLoop) -> None:
        self.client, self.loop = client, loop
        self.connects = 0
        self.dialled = asyncio.Event()  # paho's connect ran (in the executor thread)
        self.answer = True
        self.sockets: list[socket.socket] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        paho = client._client
        paho.connect = self.connect  # type: ignore[method-assign]
        paho.disconnect = self.disconnect  # type: ignore[method-assign]

    def connect(self, *args: Any, **kwargs: Any) -> int:
        self.connects += 1
        ours = socket.create_connection(self.listener.getsockname())
        theirs, _ = self.listener.accept()
        ours.setblocking(False)
        self.sockets.append(theirs)
        self.loop.call_soon_threadsafe(self.dialled.set)
        self.client._client._sock = ours
        if self.answer:
            self.loop.call_soon_threadsafe(self._connack)
        return MQTT_ERR_SUCCESS

    def _connack(self) -> None:
        if not self.client._connected.done():
            self.client._connected.set_result(None)

    def disconnect(self, *args: Any, **kwargs: Any) -> int:
        return MQTT_ERR_SUCCESS  # queued; the socket never takes it, no on_disconnect

    def close(self) -> None:
        for theirs in self.sockets:
            theirs.close()
        self.listener.close()


@pytest.fixture
async def fake() -> Any:
    client = new_client(MqttOptions(host="127.0.0.1", client_id="lock-test"))
    client.timeout = 0.2  # aiomqtt's wait for a CONNACK, a DISCONNECT to leave
    broker = FakeBroker(client, asyncio.get_running_loop())
    yield broker
    broker.close()


async def test_an_exit_whose_disconnect_never_leaves_lets_the_next_connect_in(
    fake: FakeBroker,
) -> None:
    client = fake.client
    with pytest.raises(Exception, match="timed out"):
        async with client:
            pass  # the exit waits for a DISCONNECT that never leaves, then gives up
    assert not client._lock.locked()
    assert client._client._sock is None  # the old socket is closed, not left to linger
    async with client:  # before: "The client context manager is reusable, but not reentrant"
        assert fake.connects == 2
        client._disconnected.set_result(None)  # the broker ended this one: a clean exit
    assert not client._lock.locked()


async def test_an_entry_cancelled_while_it_waits_for_the_connack_lets_the_next_connect_in(
    fake: FakeBroker,
) -> None:
    client = fake.client
    client.timeout = 60.0  # the CONNACK is awaited long: the cancel comes first
    fake.answer = False
    entering = asyncio.create_task(client.__aenter__())
    await fake.dialled.wait()  # the entry waits for the CONNACK now
    entering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await entering
    assert not client._lock.locked()
    assert client._client._sock is None
    fake.answer = True
    async with client:
        assert fake.connects == 2
        client._disconnected.set_result(None)
    assert not client._lock.locked()


async def test_an_entry_that_times_out_closes_the_socket_it_opened(fake: FakeBroker) -> None:
    client = fake.client
    fake.answer = False
    with pytest.raises(Exception, match="timed out"):
        async with client:
            pass
    assert not client._lock.locked()
    # A CONNACK late on the old socket cannot make the next connect look answered.
    assert client._client._sock is None
    fake.answer = True
    async with client:
        client._disconnected.set_result(None)
    assert fake.connects == 2
