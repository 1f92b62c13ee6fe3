"""Another broker user writing the bridge's retained topics, or leaving fake ones.

A hostile (or careless) client publishes on a charger's state topics, its availability,
its JSON state: the bridge answers with its own value at once, not at the charger's next
change of it (for a setting perhaps never). Two bridges misconfigured onto one base topic
answer each other a bounded number of times. Fake availability topics left under the
base topic cost a clear each, not one per catalogue topic.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator

import aiomqtt
import pytest

from goe2mqtt.mqtt.session import InboundMessage, MqttOptions, MqttSession, Subscription
from goe2mqtt.sim.broker import MosquittoBroker

from ..conftest import MqttProbe, Received, RunningBridge, Setup, cancel, until


@pytest.fixture
async def hostile(broker: MosquittoBroker) -> AsyncIterator[aiomqtt.Client]:
    """Another user of the broker, with a client id of its own."""
    async with aiomqtt.Client(
        broker.host, broker.port, identifier=f"hostile-{uuid.uuid4().hex[:8]}"
    ) as client:
        yield client


async def retained_now(broker: MosquittoBroker, topic: str) -> bytes | None:
    """What a new subscriber gets for the topic (None: nothing retained)."""
    got: list[bytes] = []
    async with aiomqtt.Client(broker.host, broker.port) as reader:
        await reader.subscribe(topic, qos=1)
        await reader.publish(f"{topic}/probe-marker", b"", qos=1)  # comes after the retained
        await reader.subscribe(f"{topic}/probe-marker", qos=1)
        await reader.publish(f"{topic}/probe-marker", b"end", qos=1)
        async for message in reader.messages:
            if message.topic.value == topic:
                got.append(message.payload if isinstance(message.payload, bytes) else b"")
            elif message.payload == b"end":
                break
    return got[-1] if got else None


async def test_what_another_user_writes_on_our_topics_is_answered_with_our_value(
    broker: MosquittoBroker,
    setup: Setup,
    probe: MqttProbe,
    bridge: RunningBridge,
    hostile: aiomqtt.Client,
) -> None:
    topics = setup.topics
    current = setup.state("garage", "charging_current")  # a setting: may never change
    state, availability = topics.json_state("garage"), topics.availability("garage")
    await probe.wait_for(current)
    mark = probe.mark()
    setup.charger("garage").amp = 13  # a change of the bridge's own, first
    bridge.bridge.chargers["garage"].poll_soon()
    await probe.wait_text(current, "13", since=mark)
    ours = await probe.wait_for(state, lambda m: m.json()["charging_current"] == 13, since=mark)

    limit, carport = (
        setup.state("garage", "max_current"),
        setup.state("carport", "charging_current"),
    )
    writes = [
        (current, b"99", True),  # a wrong value, retained
        (state, b'{"charging_current": 99}', True),
        (availability, b"offline", True),
        (limit, b"", True),  # a clear of ours
        (carport, b"42", False),  # live only
    ]
    expected = {
        current: b"13",
        availability: b"online",
        limit: (await probe.wait_for(limit)).payload,
        carport: (await probe.wait_for(carport)).payload,
    }

    def ours_again(topic: str, message: Received) -> bool:
        if topic == state:  # the JSON state moves with the simulated charger's values
            return message.payload != b'{"charging_current": 99}' and (
                message.json()["charging_current"] == 13
            )
        return message.payload == expected[topic]

    assert ours.payload
    for topic, payload, retain in writes:
        mark = probe.mark()
        await hostile.publish(topic, payload, qos=1, retain=retain)
        await probe.wait_for(topic, lambda m, p=payload: m.payload == p, since=mark)  # type: ignore[misc]
        # Answered: the probe sees our value after the hostile's.
        await probe.wait_for(topic, lambda m, t=topic: ours_again(t, m), since=mark)  # type: ignore[misc]
    for topic, _, _ in writes:
        assert await retained_now(broker, topic) == probe.latest(topic).payload, topic  # type: ignore[union-attr]
    # Only the hostile's writes came back to the bridge: none of its own publishes (its
    # change, its answers) did (no_local).
    session = bridge.bridge.mqtt
    assert session.overwrites.seen == len(writes)
    # A write of our own value is not one to answer.
    mark = probe.mark()
    await hostile.publish(current, b"13", qos=1, retain=True)
    await probe.wait_for(current, since=mark)
    await probe.command(topics.command("garage", "set_phase"), json.dumps({"phase": "auto"}))
    assert session.overwrites.seen == len(writes)


async def test_commands_and_changes_are_not_crowded_out_by_a_flood_of_overwrites(
    setup: Setup, probe: MqttProbe, bridge: RunningBridge, hostile: aiomqtt.Client
) -> None:
    topics = setup.topics
    leaves = [setup.state("garage", key) for key in bridge.bridge.chargers["garage"].view.states]
    for topic in leaves:
        await probe.wait_for(topic)
    # Thousands of wrong values on every state topic the garage has, not waited for.
    flood = asyncio.create_task(_flood(hostile, leaves, rounds=30))
    try:
        result = await probe.command(
            topics.command("garage", "change_charging_power"), json.dumps({"charging_power": 9})
        )
        assert result["ok"], result
        await probe.wait_text(setup.state("garage", "charging_current"), "9")
    finally:
        await flood
    # A command after the flood: its result says the bridge has read all of the flood
    # (the broker took the flood first, and hands both on over one connection in order).
    phase = json.dumps({"phase": "auto"})
    assert (await probe.command(topics.command("garage", "set_phase"), phase))["ok"]
    session = bridge.bridge.mqtt
    await until(
        lambda: not session.answering and session.backlog == 0,
        "every answer sent (the last ones spaced by a few seconds)",
        within=60,
    )
    # What the flood left, the answers put back (unless a topic was given up on: said).
    # Waited for at the probe: an answer taken for sending is in no backlog, and reaches
    # the probe a moment after (under load the test read the probe before ~100 came).

    def wrong() -> list[str]:
        return [t for t in leaves if probe.latest(t).payload == b"hostile"]  # type: ignore[union-attr]

    await until(
        lambda: all(session.overwrites.left(topic) for topic in wrong()),
        "every topic the flood left put back, or given up on",
    )
    assert len(wrong()) < len(leaves)


async def _flood(client: aiomqtt.Client, leaves: list[str], *, rounds: int) -> None:
    for _ in range(rounds):
        for topic in leaves:
            await client.publish(topic, b"hostile", qos=0, retain=True)
    # The last word on each, at a pace the bridge reads: a broker drops QoS 0 messages
    # for a subscriber that reads slower than a flood comes (the bridge watches at QoS 0,
    # so that a flood never queues in front of a command), and a write it never got
    # cannot be answered.
    for topic in leaves:
        await client.publish(topic, b"hostile", qos=1, retain=True)


async def test_two_bridges_on_one_base_topic_answer_each_other_a_bounded_number_of_times(
    broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each says its value is the one; each answers the other's at once a few times,
    then at growing intervals, then one leaves the topic to the other: no ping-pong
    for ever."""
    from goe2mqtt.mqtt import overwrites  # the mechanism itself: new with the watch

    monkeypatch.setattr(overwrites, "AT_ONCE", 2)
    monkeypatch.setattr(overwrites, "GIVE_UP_AFTER", 4)  # answers: at once, at once, 1 s, 2 s
    base = f"twin{uuid.uuid4().hex[:8]}"
    topic = f"{base}/garage/state"

    def session(name: str) -> MqttSession:
        return MqttSession(
            MqttOptions(
                host=broker.host,
                port=broker.port,
                client_id=f"{base}-{name}",
                availability_topic=f"{base}/bridge/availability",
            ),
            [Subscription(f"{base}/garage/+", qos=0, ours=True)],
            owner=lambda t: t if t == topic else None,
        )

    def ignore(message: InboundMessage) -> None:
        pass

    twins = [session("a"), session("b")]
    async with MqttProbe(broker.host, broker.port, [topic]) as probe:
        running = [asyncio.create_task(twin.run(ignore)) for twin in twins]
        try:
            await until(lambda: all(twin.connected for twin in twins), "both connected")
            for twin, value in zip(twins, (b"a", b"b"), strict=True):
                await twin.publish_retained(topic, value)
            await until(
                lambda: any(twin.overwrites.unanswered for twin in twins),
                "one left the topic to the other",
                within=30,
            )
            idle = [lambda t=twin: not t.answering and t.backlog == 0 for twin in twins]
            await until(lambda: all(check() for check in idle), "nothing more to answer")
            sent = probe.since(0, topic)
            # Each: its own value once, then GIVE_UP_AFTER answers at most.
            assert len(sent) <= 2 * (1 + overwrites.GIVE_UP_AFTER), sent
            # The one that did not give up has the topic: the last word was its.
            keeper = next(twin for twin in twins if not twin.overwrites.unanswered)
            assert await retained_now(broker, topic) == (b"a" if keeper is twins[0] else b"b")
        finally:
            for twin, task in zip(twins, running, strict=True):
                twin.stop()
                await cancel(task)


FAKES = 300


async def test_fake_availability_topics_cost_a_clear_each_and_stale_chargers_are_cleared(
    broker: MosquittoBroker, setup: Setup, probe: MqttProbe, hostile: aiomqtt.Client
) -> None:
    topics = setup.topics
    fakes = [topics.availability(f"fake{n}") for n in range(FAKES)]
    stale = [
        topics.availability("oldcharger"),
        topics.json_state("oldcharger"),
        topics.session("oldcharger"),
        setup.state("oldcharger", "energy_total"),
        setup.state("oldcharger", "car_status"),
    ]
    not_ours = f"{topics.base}/oldcharger/someone_elses"
    for topic in [*fakes, *stale, not_ours]:
        await hostile.publish(topic, b"online", qos=1, retain=True)
    await until(lambda: probe.mark() >= len(fakes) + len(stale) + 1, "all left retained")
    mark = probe.mark()
    running = RunningBridge(setup.settings)
    await running.start()
    try:
        bridge = running.bridge
        for topic in [*fakes, *stale]:
            await probe.wait_for(topic, lambda m: m.payload == b"", since=mark)
        await until(
            lambda: bridge.mqtt.looked_back and not bridge._tasks and bridge.mqtt.backlog == 0,
            "the clean-up is over",
            within=30,
        )
        await probe.wait_text(topics.availability("garage"), "online", since=mark)
    finally:
        await running.stop()
    cleared = [m.topic for m in probe.since(mark) if m.payload == b""]
    assert set(cleared) == {*fakes, *stale}  # nothing else: not 135 topics a fake
    # Once each: before, a fake cost ~135 clears (40 000 here); and a clear whose PUBACK
    # was on its way at the stop was sent again by the goodbye's flush (the last few).
    twice = [topic for topic, n in Counter(cleared).items() if n > 1]
    assert twice == [], twice
    assert await retained_now(broker, not_ours) == b"online"  # not a topic of ours
