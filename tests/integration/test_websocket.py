"""The charger's websocket through a real Mosquitto: auth (pbkdf2, bcrypt, a wrong
password), partial full status and deltas, secured writes confirmed by deltas, the
fallback to polling and the return, hostile frames, and one connection per charger."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
import structlog

from goe2mqtt.config.settings import parse_settings
from goe2mqtt.goe.websocket import WebSocketLink
from goe2mqtt.goe.ws_protocol import (
    auth_message,
    encode,
    hashed_password,
    secured,
    set_value,
)
from goe2mqtt.mqtt.topics import Topics
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Simulator
from tests.conftest import (
    PASSWORD,
    SERIALS,
    MqttProbe,
    RunningBridge,
    make_settings,
    until,
)


def websocket_settings(
    broker: MosquittoBroker, sim: Simulator, *, password: str = PASSWORD, cloud: bool = False,
    **overrides: Any,
) -> dict[str, Any]:  # fmt: skip
    raw = make_settings(
        broker, sim, chargers=("garage", "carport"), transport="cloud" if cloud else "local"
    )
    for charger in raw["chargers"]:
        charger.update({"transport": "websocket", "password": password, **overrides})
    return raw


@pytest.fixture
async def pushing(
    broker: MosquittoBroker, push_sim: Simulator
) -> AsyncIterator[tuple[Topics, RunningBridge, MqttProbe]]:
    settings = parse_settings(websocket_settings(broker, push_sim))
    topics = Topics(settings.mqtt.base_topic)
    running = RunningBridge(settings)
    async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
        await running.start()
        try:
            for name in ("garage", "carport"):
                await probe.wait_text(topics.state(name, "connection"), "websocket")
                await probe.wait_text(topics.availability(name), "online")
            yield topics, running, probe
        finally:
            await running.stop()


async def test_both_hashes_push_changes_without_polling(
    pushing: tuple[Topics, RunningBridge, MqttProbe], push_sim: Simulator
) -> None:
    topics, _, probe = pushing
    for name in ("garage", "carport"):
        charger = push_sim.charger(SERIALS[name])
        polls = charger.status_calls
        charger.plug_in()
        await probe.wait_text(topics.state(name, "car_status"), "charging")
        # Pushed: the plug reached MQTT with no HTTP status call at all.
        assert charger.status_calls == polls
        assert push_sim.sockets[SERIALS[name]].most_open == 1


async def test_a_quiet_charger_publishes_nothing_though_deltas_flow(
    pushing: tuple[Topics, RunningBridge, MqttProbe], push_sim: Simulator
) -> None:
    topics, _, probe = pushing
    await probe.wait_text(topics.state("garage", "car_status"), "idle")
    await _deltas(push_sim, "garage", 3)  # what was on its way has arrived
    mark = probe.mark()
    await _deltas(push_sim, "garage", 10)  # each carries utc and rbt, which no entity shows
    garage = [m.topic for m in probe.since(mark) if m.topic.startswith(f"{topics.base}/garage/")]
    assert garage == [], f"a quiet charger published {garage}"
    assert push_sim.charger(SERIALS["garage"]).status_calls == 0


async def _deltas(sim: Simulator, name: str, count: int) -> None:
    """Wait until the charger has sent ``count`` more deltas (counted by its status calls
    on the socket side: each delta reads the status once)."""
    charger = sim.charger(SERIALS[name])
    reads = {"n": 0}
    original = charger.status

    def counting(keys: Any = None) -> dict[str, Any]:
        reads["n"] += 1
        return original(keys)

    charger.status = counting  # type: ignore[method-assign]
    try:
        await until(lambda: reads["n"] >= count, f"{count} deltas")
    finally:
        del charger.status


async def test_secured_write_confirmed_by_the_deltas_that_follow(
    pushing: tuple[Topics, RunningBridge, MqttProbe], push_sim: Simulator
) -> None:
    topics, _, probe = pushing
    garage = push_sim.charger(SERIALS["garage"])
    garage.plug_in()
    sets_over_http = garage.set_requests
    result = await probe.command(topics.command("garage", "change_charging_power"), "10")
    assert result["ok"] is True, result
    assert garage.amp == 10
    assert garage.set_requests == sets_over_http + 1  # one setValue, over the socket
    assert push_sim.sockets[SERIALS["garage"]].refused_writes == []
    await probe.wait_text(topics.state("garage", "charging_current"), "10")


async def test_an_acknowledged_write_that_did_not_apply_is_not_confirmed(
    pushing: tuple[Topics, RunningBridge, MqttProbe], push_sim: Simulator
) -> None:
    topics, _, probe = pushing
    garage = push_sim.charger(SERIALS["garage"])
    garage.faults.drop_sets = True  # the socket says success, the charger forgets it
    result = await probe.command(topics.command("garage", "change_charging_power"), "9")
    assert (result["ok"], result["error"]) == (False, "not confirmed"), result
    assert garage.dropped_sets == [{"amp": 9}]


async def test_pv_feed_goes_over_the_socket(
    pushing: tuple[Topics, RunningBridge, MqttProbe], push_sim: Simulator
) -> None:
    topics, _, probe = pushing
    garage = push_sim.charger(SERIALS["garage"])
    await probe.publish(topics.command("garage", "pv_grid"), "-1500")
    await until(lambda: garage.ids is not None, "ids written")
    assert garage.ids == {"pGrid": -1500.0}
    assert garage.status_calls == 0
    await probe.wait_text(topics.state("garage", "pv_feed"), "confirmed")


async def test_the_simulator_refuses_a_write_with_a_bad_hmac(push_sim: Simulator) -> None:
    serial = SERIALS["garage"]
    host = push_sim.local_hosts[serial]
    async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://{host}/ws") as socket:
        hello = json.loads(await socket.receive_str())
        required = json.loads(await socket.receive_str())
        hashed = hashed_password(PASSWORD, hello["serial"], "pbkdf2")
        await socket.send_str(encode(auth_message(required, hashed)))
        assert json.loads(await socket.receive_str())["type"] == "authSuccess"
        forged = secured(set_value(1, "amp", 7), b"not the hashed password")
        await socket.send_str(encode(forged))
        while True:
            message = json.loads(await socket.receive_str())
            if message["type"] == "response":
                break
    assert message["success"] is False
    assert push_sim.sockets[serial].refused_writes == ["securedMsg: wrong hmac"]
    assert push_sim.charger(serial).amp == 16


async def test_wrong_password_falls_back_to_polling_and_says_why_once(
    broker: MosquittoBroker, push_sim: Simulator
) -> None:
    settings = parse_settings(websocket_settings(broker, push_sim, password="not-it"))
    topics = Topics(settings.mqtt.base_topic)
    running = RunningBridge(settings)
    with structlog.testing.capture_logs() as logs:
        async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
            await running.start()
            try:
                connection = topics.state("garage", "connection")
                await probe.wait_for(connection, lambda m: "wrong password" in m.text)
                assert probe.last_text(connection) == (
                    "polling (websocket: wrong password: the charger refused it (Wrong password))"
                )
                # Polled over the local HTTP API meanwhile: online, values current.
                await probe.wait_text(topics.availability("garage"), "online")
                push_sim.charger(SERIALS["garage"]).plug_in()
                await probe.wait_text(topics.state("garage", "car_status"), "charging")
            finally:
                await running.stop()
    down = [e for e in logs if e["event"] == "websocket_down" and e["charger"] == "garage"]
    assert len(down) == 1
    assert down[0]["log_level"] == "error"
    assert "password" in down[0]["reason"]
    assert "not-it" not in str(logs)


async def test_socket_lost_then_polling_then_back(
    pushing: tuple[Topics, RunningBridge, MqttProbe], push_sim: Simulator
) -> None:
    topics, _, probe = pushing
    garage = push_sim.charger(SERIALS["garage"])
    socket = push_sim.sockets[SERIALS["garage"]]
    connection = topics.state("garage", "connection")
    garage.faults.ws = "refuse"  # it will not come back at once
    mark = probe.mark()
    await socket.close_all()
    await probe.wait_for(connection, lambda m: m.text.startswith("polling"), since=mark)
    garage.plug_in()
    await probe.wait_text(topics.state("garage", "car_status"), "charging")  # by polling
    assert garage.status_calls > 0
    garage.faults.ws = None
    await probe.wait_text(connection, "websocket", since=mark)
    polls = garage.status_calls
    garage.unplug()
    await probe.wait_text(topics.state("garage", "car_status"), "idle")
    assert garage.status_calls == polls  # back on the socket: no more polls
    assert socket.most_open == 1


@pytest.mark.parametrize("fault", ["garbage", "bad_types", "big_frame", "auth_loop", "no_auth"])
async def test_hostile_socket_input_stops_nothing(
    fault: str, pushing: tuple[Topics, RunningBridge, MqttProbe], push_sim: Simulator
) -> None:
    topics, running, probe = pushing
    garage = push_sim.charger(SERIALS["garage"])
    socket = push_sim.sockets[SERIALS["garage"]]
    garage.faults.ws = fault
    await socket.close_all()  # auth faults strike at the next connection
    connections = socket.connections
    await until(lambda: socket.connections > connections, "a new connection")
    garage.plug_in()
    await probe.wait_text(topics.state("garage", "car_status"), "charging")
    result = await probe.command(topics.command("garage", "change_charging_power"), "11")
    assert result["ok"] is True, result
    assert running.task is not None
    assert not running.task.done()
    garage.faults.ws = None
    await socket.close_all()
    await probe.wait_text(topics.state("garage", "connection"), "websocket")
    # The carport never noticed.
    assert probe.last_text(topics.state("carport", "connection")) == "websocket"


async def test_cloud_websocket_with_bearer_token(
    broker: MosquittoBroker, push_sim: Simulator
) -> None:
    settings = parse_settings(websocket_settings(broker, push_sim, cloud=True))
    topics = Topics(settings.mqtt.base_topic)
    running = RunningBridge(settings)
    async with MqttProbe(broker.host, broker.port, [f"{topics.base}/#"]) as probe:
        await running.start()
        try:
            await probe.wait_text(topics.state("garage", "connection"), "cloud websocket")
            garage = push_sim.charger(SERIALS["garage"])
            garage.plug_in()
            await probe.wait_text(topics.state("garage", "car_status"), "charging")
        finally:
            await running.stop()


async def test_a_silent_socket_is_dead_and_comes_back(push_sim: Simulator) -> None:
    serial = SERIALS["garage"]
    charger = push_sim.charger(serial)
    fulls: list[bool] = []

    async def listener(values: Any, full: bool) -> None:
        fulls.append(full)

    async with aiohttp.ClientSession() as http:
        url = f"ws://{push_sim.local_hosts[serial]}/ws"
        link = WebSocketLink(http, url, PASSWORD, name="garage", silence=1.0)
        running = asyncio.create_task(link.run(listener))
        try:
            await until(lambda: link.live, "live")
            charger.faults.ws = "silent"  # the charger stops talking, the TCP stays up
            await until(lambda: not link.live, "the silence noticed")
            assert link.reason == "no message for 1 s"
            charger.faults.ws = None
            await until(lambda: link.live, "back")
            assert fulls.count(True) == 2  # a full status at each connection
        finally:
            running.cancel()
            await asyncio.wait({running})


async def test_a_link_hands_on_only_what_its_keep_makes_of_each_message(
    push_sim: Simulator,
) -> None:
    """The transport's keep decides, frame by frame and without a coroutine for each,
    what goes on: a delta of nothing kept (the charger's clock) does not reach the
    listener; a full status and a delta that changed a kept key do."""
    serial = SERIALS["garage"]
    charger = push_sim.charger(serial)
    kept: list[bool] = []  # every message's full flag, as keep saw it
    heard: list[tuple[dict[str, Any], bool]] = []

    def keep(status: Any, full: bool) -> dict[str, Any] | None:
        kept.append(full)
        amp = {k: v for k, v in status.items() if k == "amp"}
        return amp if amp or full else None

    async def listener(values: Any, full: bool) -> None:
        heard.append((dict(values), full))

    async with aiohttp.ClientSession() as http:
        url = f"ws://{push_sim.local_hosts[serial]}/ws"
        link = WebSocketLink(http, url, PASSWORD, name="garage")
        running = asyncio.create_task(link.run(listener, keep=keep))
        try:
            await until(lambda: link.live, "live")
            await until(lambda: kept.count(False) >= 2, "two deltas")
            assert heard == [({"amp": charger.amp}, True)]  # the deltas said only the time
            charger.amp = 10 if charger.amp != 10 else 12
            await until(lambda: len(heard) == 2, "the change handed on")
            assert heard[1] == ({"amp": charger.amp}, False)
        finally:
            running.cancel()
            await asyncio.wait({running})
    # The reading ran in a task of its own: cancelled with the link, none left behind.
    assert not [t for t in asyncio.all_tasks() if t.get_name() == "read:garage" and not t.done()]
