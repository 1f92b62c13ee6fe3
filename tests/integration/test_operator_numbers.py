"""A charger's car state that no charger has, on the operator's surface (/metrics, the
status page). The catalogue reads `car` for MQTT and calls a code it does not know
unknown; the page and /metrics read the raw status instead, and took any int: a
charger reporting `car: 10**400` made every scrape of the whole fleet a 500
(prometheus-client: int too large to convert to float), and `car: 2**60` was scraped as
car state 1.15e18."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Simulator

from ..conftest import SERIALS, WAIT, make_settings, until
from ..web import get, web_daemon


def car_states(text: str) -> dict[str, float]:
    """goe2mqtt_charger_car_state by charger, from a scrape's text."""
    return {
        sample.labels["charger"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "goe2mqtt_charger_car_state"
        for sample in family.samples
    }


@pytest.mark.parametrize("car", [10**400, 2**60], ids=["400_digits", "2_to_60"])
async def test_a_car_state_no_charger_has_is_unknown_on_metrics_and_the_page(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path, car: int
) -> None:
    simulator.charger(SERIALS["garage"]).faults.values = {"car": car}
    raw = make_settings(broker, simulator, chargers=("garage", "carport"))
    async with web_daemon(tmp_path, raw) as (daemon, url):
        # The bridge has read the garage's car (the catalogue refused it) and the carport's.
        await until(
            lambda: any(
                e.get("event") == "value_unreadable"
                and e.get("charger") == "garage"
                and e.get("entity") == "car_status"
                for e in daemon.events()
            ),
            "the garage's car state refused by the catalogue",
        )

        def both_scraped(text: str) -> bool:
            online = {
                s.labels["charger"]
                for f in text_string_to_metric_families(text)
                if f.name == "goe2mqtt_charger_online"
                for s in f.samples
                if s.value == 1
            }
            return online == {"garage", "carport"} and "carport" in car_states(text)

        async def scrape() -> tuple[int, str]:
            # Until a scrape fails or has both chargers (bounded: liveness, not speed).
            while True:
                status, text, _ = await get(f"{url}/metrics")
                if status != 200 or both_scraped(text):
                    return status, text

        status, text = await asyncio.wait_for(scrape(), WAIT)
        assert status == 200, text[-500:]
        states = car_states(text)
        assert "garage" not in states, f"car state {states['garage']} scraped as right"
        assert states["carport"] == simulator.charger(SERIALS["carport"]).car

        status, page, _ = await get(f"{url}/")
        assert status == 200
        assert str(car) not in page
        assert daemon.running
