"""The retained store's sender: a window of publishes, refilled by each answer at once."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest

from goe2mqtt.mqtt.client import SEND_WINDOW, BrokerStalled, PublishRefused
from goe2mqtt.mqtt.retained import RetainedStore
from goe2mqtt.mqtt.sender import Answer


class Client:
    """The session's client as the sender sees it: what was handed over, unanswered
    until the test answers."""

    def __init__(self) -> None:
        self.handed: list[tuple[int, str, Answer]] = []

    def publish_acked(self, topic: str, payload: bytes, answer: Answer) -> int:
        mid = len(self.handed) + 1
        self.handed.append((mid, topic, answer))
        return mid

    def answer(self, n: int, outcome: str | BaseException | None = None) -> None:
        mid, _, answer = self.handed[n]
        answer(mid, outcome)


async def handed(client: Client, count: int) -> None:
    for _ in range(100):
        if len(client.handed) >= count:
            return
        await asyncio.sleep(0)
    raise AssertionError(f"{len(client.handed)} handed over, not {count}")


async def test_an_answer_hands_the_next_owed_topic_over_before_the_loop_turns() -> None:
    """A saturated loop's turns are long: the slot an answer frees is filled in the
    callback that read the PUBACK, not by a task woken at a later turn."""
    refused: list[PublishRefused] = []
    store = RetainedStore(refused.append)
    for n in range(SEND_WINDOW + 3):
        store.put(f"c{n}/state", str(n).encode())
    client = Client()
    sender = asyncio.create_task(store.send(client, 60.0))
    await handed(client, SEND_WINDOW)
    await asyncio.sleep(0)
    assert len(client.handed) == SEND_WINDOW  # the window, no more
    client.answer(0)
    assert len(client.handed) == SEND_WINDOW + 1  # no turn of the loop in between
    client.answer(1, "Not authorized (reason code 135)")  # refused: told, not owed
    assert [r.topic for r in refused] == ["c1/state"]
    assert len(client.handed) == SEND_WINDOW + 2
    for n in range(2, SEND_WINDOW + 3):
        client.answer(n)
    assert store.backlog == 0
    barrier = store.barrier()
    await asyncio.wait_for(store.settled(barrier), 5)
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)


async def test_a_publish_the_connection_lost_is_owed_again_and_ends_the_sending() -> None:
    store = RetainedStore(lambda exc: None)
    store.put("a/state", b"1")
    store.put("b/state", b"2")
    client = Client()
    sender = asyncio.create_task(store.send(client, 60.0))
    await handed(client, 2)
    client.answer(0)
    client.answer(1, aiomqtt.MqttError("the connection ended"))
    with pytest.raises(aiomqtt.MqttError, match="connection ended"):
        await asyncio.wait_for(sender, 5)
    assert store.backlog == 1  # b/state: owed at the next connection; a/state went
    late = Client()
    again = asyncio.create_task(store.send(late, 60.0))
    await handed(late, 1)
    assert late.handed[0][1] == "b/state"
    again.cancel()
    await asyncio.gather(again, return_exceptions=True)


async def test_an_ended_sending_takes_no_late_answer_and_owes_what_was_in_flight() -> None:
    store = RetainedStore(lambda exc: None)
    store.put("a/state", b"1")
    client = Client()
    sender = asyncio.create_task(store.send(client, 60.0))
    await handed(client, 1)
    sender.cancel()
    await asyncio.gather(sender, return_exceptions=True)
    assert store.backlog == 1
    client.answer(0)  # the PUBACK of a connection whose sending ended: not counted
    assert store.backlog == 1


async def test_a_broker_that_answers_nothing_is_stalled() -> None:
    store = RetainedStore(lambda exc: None)
    store.put("a/state", b"1")
    client = Client()
    with pytest.raises(BrokerStalled, match="no PUBACK within"):
        await asyncio.wait_for(store.send(client, 0.05), 5)
    assert store.backlog == 1
