"""The status page's "Session energy" is the ledger's, as Home Assistant's *Session
energy* is: the same name showed the charger's `wh` (energy since the car connected)
there, which parts from the ledger's figure when the bridge came late to a session, a
replug or a counter jump split it (2.03 kWh on the page, 0.002 in Home Assistant)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, cast

from goe2mqtt.bridge.operator_view import charger_row
from goe2mqtt.charger.availability import Availability
from goe2mqtt.charger.loop import Charger
from goe2mqtt.web.cells import row_cells


def _charger(states: dict[str, Any]) -> Charger:
    up = Availability("garage")
    up.online = True
    fake = SimpleNamespace(
        name="garage",
        view=SimpleNamespace(states=states, facts=None),
        status={"car": 1},
        availability=up,
        last_error=None,
        connection="polling",
        queued=0,
        pushed=0,
    )
    return cast(Charger, fake)


def test_the_pages_session_energy_is_the_ledgers_not_the_chargers_wh() -> None:
    row = charger_row(_charger({"energy_since_car_connected": 2.03, "session_energy": 0.002}))
    assert row.session_kwh == 0.002
    assert row_cells(row)["session"] == "0.00 kWh"


def test_no_session_on_the_books_leaves_the_cell_empty() -> None:
    row = charger_row(_charger({"energy_since_car_connected": 2.03, "session_energy": None}))
    assert row_cells(row)["session"] == ""
