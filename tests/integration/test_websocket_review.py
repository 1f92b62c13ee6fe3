"""The websocket fixes of issue 27 against a reviewer's hostile peer (issue 27 review).

The peer and its harness are test_websocket_hostile's: an aiohttp server on
127.0.0.1 whose /ws runs a script per connection and whose /api answers as a
simulated charger; the Bridge runs in this process through a real Mosquitto.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import structlog
from aiohttp import web

from goe2mqtt.goe import websocket as websocket_module
from goe2mqtt.goe.websocket import WebSocketLink
from goe2mqtt.goe.ws_protocol import encode
from goe2mqtt.goe.ws_transport import WebSocketTransport
from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.util.logs import SkipCount
from tests.conftest import PROCESS_WAIT, RunningBridge, until
from tests.integration.test_websocket_hostile import (
    HostilePeer,
    Script,
    bridge_on,
    connection,
    forever,
    read_back_asks_http,
    skipped,
    wait_skipped,
)


def link_of(running: RunningBridge) -> WebSocketLink:
    transport = running.bridge.chargers["garage"].transport
    assert isinstance(transport, WebSocketTransport)
    return transport.link


async def answer(peer: HostilePeer, socket: web.WebSocketResponse, message: dict[str, Any]) -> None:
    """Apply a setValue on the simulated charger and answer it as a charger does."""
    _, answers = peer.charger.apply_set({message["key"]: json.dumps(message["value"])})
    await socket.send_str(encode({"type": "response", "requestId": message["requestId"],
                                  "success": answers.get(message["key"]) is True}))  # fmt: skip


@contextlib.asynccontextmanager
async def ticking(send: Callable[[], Any], every: float = 0.1) -> AsyncIterator[None]:
    """The peer sends ``send()`` at its own pace while the block runs."""

    async def tick() -> None:
        while True:
            try:
                await send()
            except (ConnectionError, RuntimeError):
                return  # the bridge closed the connection
            await asyncio.sleep(every)

    ticker = asyncio.ensure_future(tick())
    try:
        yield
    finally:
        ticker.cancel()


# --- defect 1: unknown message types, one reason ------------------------------------------


async def many_unknown_types(peer: HostilePeer, socket: web.WebSocketResponse) -> None:
    await peer.hello(socket)
    await peer.full_status(socket)
    for n in range(200):
        await socket.send_str(encode({"type": f"made-up-{n}"}))
    await peer.delta(socket, {"amp": 13})
    await forever(socket)


async def test_unknown_message_types_are_counted_under_one_reason_and_logged_once(
    broker: MosquittoBroker,
) -> None:
    with structlog.testing.capture_logs() as logs:
        async with bridge_on(broker, many_unknown_types) as (_, topics, _, probe):
            await probe.wait_text(topics.state("garage", "charging_current"), "13")
            await wait_skipped(probe, topics, "unknown message type", 200)
            assert len(skipped(probe, topics)) <= SkipCount.MAX_REASONS
    lines = [e for e in logs if e["event"] == "websocket_frame_skipped"
             and "message type" in e["reason"]]  # fmt: skip
    assert [e["reason"] for e in lines] == ["unknown message type"], lines
    assert lines[0]["type"] == "made-up-0"  # the first type seen, in the one line


def test_a_skip_count_tells_apart_a_bounded_number_of_reasons() -> None:
    skips = SkipCount("skipped")
    with structlog.testing.capture_logs() as logs:
        for n in range(100):
            skips.skip(f"reason {n}")
            skips.skip(f"reason {n}")
    assert len(skips) == SkipCount.MAX_REASONS
    assert skips[SkipCount.OTHER] == 2 * (100 - SkipCount.MAX_REASONS + 1)
    assert sum(skips.values()) == 200
    assert len(logs) == SkipCount.MAX_REASONS  # the bucket's first once too


# --- defect 3: an id that cannot be read is not "no id" -----------------------------------


def answers_late_with(other_id: Callable[[int], Any]) -> Script:
    """Every write first gets a refusal whose requestId is another write's, written so
    it is not read as ours are; then its own answer, and the charger applies it."""

    async def script(peer: HostilePeer, socket: web.WebSocketResponse) -> None:
        await peer.hello(socket)
        await peer.full_status(socket)
        async for message in peer.messages(socket):
            if message.get("type") != "setValue":
                continue
            await socket.send_str(encode({
                "type": "response", "requestId": other_id(message["requestId"] + 1000),
                "success": False, "message": "refused late",
            }))  # fmt: skip
            await answer(peer, socket, message)
            await peer.delta(socket, {message["key"]: message["value"]})

    return script


@pytest.mark.parametrize(
    "other_id",
    [float, lambda n: f"{n} ", lambda n: f"{n}.0", lambda n: f"#{n}", lambda n: [n]],
    ids=["float", "trailing-space", "decimal-text", "hash", "list"],
)
async def test_an_answer_whose_id_cannot_be_read_is_not_the_waiting_writes(
    other_id: Callable[[int], Any], broker: MosquittoBroker
) -> None:
    async with bridge_on(broker, answers_late_with(other_id)) as (peer, topics, _, probe):
        await probe.wait_text(connection(topics), "websocket")
        result = await probe.command(topics.command("garage", "change_charging_power"), "11")
        assert result["ok"] is True, result
        assert peer.charger.amp == 11
        await wait_skipped(probe, topics, "a response with an unreadable requestId", 1)


# --- defect 5: a delta before the read-back starts is the read-back -----------------------


async def shows_the_write_at_once(peer: HostilePeer, socket: web.WebSocketResponse) -> None:
    """A write's delta comes with its answer (before it: the charger's order is its
    own), and then nothing more: the socket already said all there is."""
    await peer.hello(socket)
    await peer.full_status(socket)
    async for message in peer.messages(socket):
        if message.get("type") == "setValue":
            peer.charger.apply_set({message["key"]: json.dumps(message["value"])})
            await peer.delta(socket, {message["key"]: message["value"]})
            await answer(peer, socket, message)


async def test_a_delta_that_came_with_the_answer_confirms_without_asking_http(
    broker: MosquittoBroker,
) -> None:
    async with bridge_on(broker, shows_the_write_at_once) as (peer, topics, _, probe):
        await probe.wait_text(connection(topics), "websocket")
        await probe.wait_text(topics.state("garage", "charging_current"), "16")
        polls = peer.http_reads
        for amp in ("11", "12"):
            result = await probe.command(topics.command("garage", "change_charging_power"), amp)
            assert result["ok"] is True, result
            await probe.wait_text(topics.state("garage", "charging_current"), amp)
        assert peer.http_reads == polls  # the socket had said it: no HTTP read


# --- defect 6: a delta of nothing the bridge reads is no sign of the charger --------------


async def says_only_what_is_not_read(peer: HostilePeer, socket: web.WebSocketResponse) -> None:
    """Live, then deltas of keys the bridge does not read (a clock), a tenth of a second
    apart; writes are applied and answered, but no delta ever shows them."""
    await peer.hello(socket)
    await peer.full_status(socket)
    async with ticking(lambda: peer.delta(socket, {"utc": "2026-12-06T03:00:00", "zzz": 1})):
        async for message in peer.messages(socket):
            if message.get("type") == "setValue":
                await answer(peer, socket, message)


async def test_a_read_back_is_not_confirmed_by_deltas_of_keys_the_bridge_does_not_read(
    broker: MosquittoBroker,
) -> None:
    await read_back_asks_http(broker, says_only_what_is_not_read)


# --- defect 7: junk frames are no sign of life --------------------------------------------

JUNK = [
    lambda socket: socket.send_bytes(b"\x81\xa3amp\x0c"),  # MessagePack: not read
    lambda socket: socket.send_str("{"),
    lambda socket: socket.send_str(encode({"type": "made-up"})),
    lambda socket: socket.send_str(encode({"type": "deltaStatus", "status": 5})),
]


async def live_then_junk(peer: HostilePeer, socket: web.WebSocketResponse) -> None:
    await peer.hello(socket)
    await peer.full_status(socket)
    turn = iter(range(1 << 30))
    async with ticking(lambda: JUNK[next(turn) % len(JUNK)](socket)):
        await forever(socket)


async def test_junk_frames_do_not_keep_a_silent_socket_looking_fresh(
    broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(websocket_module, "QUIET_STEPS", (1.0, 2.0))
    async with bridge_on(broker, live_then_junk) as (_, topics, _, probe):
        # The age of the last message grows while junk keeps coming.
        await probe.wait_text(connection(topics), "websocket (no frame for 2 s)")
        counted = skipped(probe, topics)
        assert counted.get("binary frame (MessagePack is not read)", 0) > 0, counted


# --- defect 10: hashes the peer makes the link compute, bounded ---------------------------


def new_serial_every_time(auths: list[str]) -> Script:
    """A secured hello naming a serial never seen before, authRequired, and the end of
    the connection when the auth comes: every connection costs the bridge a new hash."""

    async def script(peer: HostilePeer, socket: web.WebSocketResponse) -> None:
        await peer.hello(socket, serial=f"{900000 + peer.connections}", secured=True)
        await socket.send_str(encode({"type": "authRequired", "token1": "a", "token2": "b",
                                      "hash": "pbkdf2"}))  # fmt: skip
        async for message in peer.messages(socket):
            if message.get("type") == "auth":
                auths.append(message["hash"])  # one more hash made
                return

    return script


async def test_hashes_for_serials_a_peer_names_are_bounded(
    broker: MosquittoBroker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(websocket_module, "MAX_BACKOFF", 0.05)  # reconnect at once
    auths: list[str] = []
    async with bridge_on(broker, new_serial_every_time(auths)) as (_, _, running, _):
        # Six PBKDF2 hashes (~0.2-0.7 s of CPU each): on a starved machine more than WAIT.
        await until(lambda: len(auths) >= 6, "six connections, six hashes", within=PROCESS_WAIT)
        # The password and the hashes of the last two serials: no more to mask, no more held.
        assert len(link_of(running).secrets) <= 3


# --- defect 11: a hello's fields, bounded -------------------------------------------------


USED_HELLO_FIELDS = {"serial", "devicetype", "version", "secured", "protocol", "hostname",
                     "friendly_name", "manufacturer"}  # fmt: skip


async def hello_with_everything(peer: HostilePeer, socket: web.WebSocketResponse) -> None:
    extra = {f"field{n}": "v" * 100 for n in range(2000)}
    await peer.hello(socket, version="5" * 10_000, hostname="h" * 500, **extra)
    await peer.full_status(socket)
    await forever(socket)


async def test_a_hello_keeps_only_the_fields_the_bridge_uses_each_cut(
    broker: MosquittoBroker,
) -> None:
    async with bridge_on(broker, hello_with_everything) as (_, topics, running, probe):
        await probe.wait_text(connection(topics), "websocket")
        hello = link_of(running).hello
        assert hello["serial"] == "012345"
        assert set(hello) <= USED_HELLO_FIELDS, sorted(hello)[:5]
        assert all(len(v) <= 64 for v in hello.values() if isinstance(v, str)), hello
