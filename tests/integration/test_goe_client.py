"""The go-e client against the simulated cloud: status, set, auth and every failure kind."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest

from goe2mqtt.goe.client import GoeClient, encode_set_value
from goe2mqtt.goe.transport import (
    AuthFailed,
    ChargerOffline,
    GoeError,
    Rejected,
    TransientError,
)
from goe2mqtt.sim.simulator import Faults, SimulatedCharger, Simulator

from ..conftest import TOKEN

SERIAL = "012345"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def client(http: aiohttp.ClientSession, simulator: Simulator) -> GoeClient:
    return GoeClient(http, simulator.url_for(SERIAL), TOKEN, timeout=0.5)


def charger(simulator: Simulator) -> SimulatedCharger:
    return simulator.charger(SERIAL)


async def test_status_returns_only_the_filtered_keys(client: GoeClient) -> None:
    status = await client.status({"car", "amp", "nosuchkey"})
    assert status == {"car": 1, "amp": 16}


async def test_set_changes_what_the_next_status_returns(
    client: GoeClient, simulator: Simulator
) -> None:
    await client.set({"amp": 10})
    await client.set({"psm": 1})
    assert await client.status({"amp", "psm"}) == {"amp": 10, "psm": 1}
    assert charger(simulator).set_calls == [{"amp": 10}, {"psm": 1}]


async def test_set_sends_json_encoded_values_including_null(
    client: GoeClient, simulator: Simulator
) -> None:
    await client.set({"trx": 0})
    await client.set({"trx": None})  # the integration's library dropped this one
    await client.set({"fna": "my charger"})
    assert charger(simulator).set_calls == [{"trx": 0}, {"trx": None}, {"fna": "my charger"}]
    status = await client.status({"trx", "fna"})
    assert status == {"trx": None, "fna": "my charger"}


def test_encoding() -> None:
    assert [encode_set_value(v) for v in (16, None, True, "a b")] == ["16", "null", "true", '"a b"']


async def test_wrong_token_is_auth_failure(
    http: aiohttp.ClientSession, simulator: Simulator
) -> None:
    client = GoeClient(http, simulator.url_for(SERIAL), "wrong", timeout=1)
    with pytest.raises(AuthFailed) as caught:
        await client.status({"car"})
    assert caught.value.offline_now
    assert "wrong" not in str(caught.value)


async def test_token_as_query_parameter_and_host_routing(
    http: aiohttp.ClientSession, simulator: Simulator
) -> None:
    # The cloud accepts ?token= too; the simulator routes by Host like the cloud does.
    async with http.get(
        f"{simulator.base_url}/api/status",
        params={"filter": "sse", "token": TOKEN},
        headers={"Host": f"{SERIAL}.api.v3.go-e.io"},
    ) as response:
        assert response.status == 200
        assert await response.json() == {"sse": SERIAL}


@pytest.mark.parametrize(
    ("faults", "error", "offline_now", "reason"),
    [
        (Faults(http_status=403), ChargerOffline, True, "403"),
        (Faults(http_status=404), ChargerOffline, True, "Data is outdated"),
        (Faults(success_false=True), ChargerOffline, True, "cloud reports failure"),
        (Faults(http_status=500), TransientError, False, "server error (500)"),
        (Faults(http_status=502), TransientError, False, "server error (502)"),
        (Faults(garbage=True), TransientError, False, "not valid JSON"),
        (Faults(delay=2.0), TransientError, False, "timed out"),
        (Faults(http_status=418), TransientError, False, "unexpected HTTP status 418"),
    ],
)
async def test_failures_are_classified(
    client: GoeClient,
    simulator: Simulator,
    faults: Faults,
    error: type[GoeError],
    offline_now: bool,
    reason: str,
) -> None:
    charger(simulator).faults = faults
    for call in (client.status({"car"}), client.set({"amp": 10})):
        with pytest.raises(error) as caught:
            await call
        assert caught.value.offline_now is offline_now
        assert reason in str(caught.value)
        assert TOKEN not in str(caught.value)


async def test_rejected_set_is_422(client: GoeClient, simulator: Simulator) -> None:
    with pytest.raises(Rejected, match="422"):
        await client.set({"amp": 99})  # outside mca..ama: the charger refuses it
    charger(simulator).faults = Faults(reject_sets=True)
    with pytest.raises(Rejected):
        await client.set({"amp": 10})
    assert (await client.status({"amp"}))["amp"] == 16


async def test_connection_refused_is_transient(http: aiohttp.ClientSession) -> None:
    from goe2mqtt.sim.broker import free_port

    port = free_port()
    client = GoeClient(http, f"http://127.0.0.1:{port}", TOKEN, timeout=1)
    with pytest.raises(TransientError) as caught:
        await client.status({"car"})
    # The broker check's words, with the host: not a library's "Connect call failed".
    assert str(caught.value) == f"refused: nothing listens on 127.0.0.1:{port}"


async def test_huge_answer_is_refused(http: aiohttp.ClientSession) -> None:
    from aiohttp import web

    from goe2mqtt.goe.client import MAX_BODY_BYTES

    async def huge(request: web.Request) -> web.Response:
        return web.Response(body=b"[" + b"1," * MAX_BODY_BYTES + b"1]")

    app = web.Application()
    app.router.add_get("/api/status", huge)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        client = GoeClient(http, f"http://127.0.0.1:{port}", None, timeout=5)
        with pytest.raises(TransientError, match="larger than"):
            await client.status({"car"})
    finally:
        await runner.cleanup()


async def test_local_api_needs_no_token_and_speaks_its_own_codes(
    http: aiohttp.ClientSession, simulator: Simulator
) -> None:
    local = GoeClient(http, f"http://{simulator.local_hosts[SERIAL]}", None, local=True)
    assert (await local.status({"sse", "amp"})) == {"sse": SERIAL, "amp": 16}
    assert await local.set({"amp": 10}) == {"amp": True}
    assert (await local.status({"amp"}))["amp"] == 10
    # A refused key is HTTP 500 with per-key answers: a refusal, not a server hiccup.
    with pytest.raises(Rejected, match=r"charger refused \(amp: out of range 6\.\.32\)"):
        await local.set({"amp": 99})
    charger(simulator).faults = Faults(http_status=404)  # HTTP API v2 off in the app
    with pytest.raises(ChargerOffline, match="local HTTP API v2 not enabled"):
        await local.status({"amp"})
    charger(simulator).faults = Faults(http_status=500)  # a 500 without answers: transient
    with pytest.raises(TransientError, match=r"server error \(500\)"):
        await local.status({"amp"})
