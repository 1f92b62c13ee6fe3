"""What the ledger reads from one status: the car, the counters, power, phases, card.

Pure. A value that cannot be the charger's (10**400, NaN, text, a negative counter)
is never used: it is named in ``problems``, and an open session is flagged for it
(never priced), so hostile input cannot write absurd energy into the books.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from goe2mqtt.catalogue.codes import CARD_SLOTS
from goe2mqtt.catalogue.readers import card_field
from goe2mqtt.util.numbers import describe, finite_number
from goe2mqtt.util.text import clean_text

CAR_IDLE = 1  # no car
CAR_CONNECTED = frozenset({2, 3, 4})  # charging, waiting (for a card, the car), complete
MAX_COUNTER_WH = 1e12  # 10**9 kWh: beyond any charger's life
MAX_POWER_W = 1e6
NO_CARD = "none"  # trx null: no transaction
APP = "app"  # trx 0: authorised without a card (the app, or "authenticate all users")


@dataclass(frozen=True)
class Reading:
    connected: bool | None  # None: the car state is unknown (missing, error, garbage)
    eto: float | None  # total energy counter, Wh
    wh: float | None  # the charger's own session energy, Wh (a cross-check)
    power: float | None  # W, total
    phases: int | None
    trx: int | None  # None: no transaction, 0 app, n: card slot n-1
    trx_known: bool  # False: trx missing or unreadable (keep what the session had)
    card: str | None  # the card's name (or none/app) when trx is known
    reboots: int | None  # rbc: a change means the charger restarted
    problems: tuple[str, ...]
    # lccfi: when the car state last left idle (a car connected), ms on the charger's
    # clock since its boot; a new value under the same rbc: a new connection.
    connected_ms: int | None = None
    uptime_ms: int | None = None  # rbt: ms since boot, the clock lccfi is on


def _counter(status: Mapping[str, Any], key: str, problems: list[str]) -> float | None:
    if key not in status or status[key] is None:
        return None
    raw = status[key]
    value = finite_number(raw)
    if value is None or not 0 <= value <= MAX_COUNTER_WH:
        problems.append(f"{key}: {describe(raw)} is not a counter reading")
        return None
    return float(value)


def _small_int(raw: Any, low: int, high: int) -> int | None:
    value = finite_number(raw)
    if value is None or (isinstance(value, float) and not value.is_integer()):
        return None
    number = int(value)
    return number if low <= number <= high else None


def card_label(status: Mapping[str, Any], trx: int | None) -> str:
    if trx is None:
        return NO_CARD
    if trx == 0:
        return APP
    name = card_field(status, trx - 1, "name")
    label = clean_text(name).strip() if isinstance(name, str) else ""
    return label or f"card_{trx - 1}"


def read(status: Mapping[str, Any]) -> Reading:
    problems: list[str] = []
    car = _small_int(status.get("car"), 0, 100)
    connected = None if car is None else (True if car in CAR_CONNECTED else
                                          False if car == CAR_IDLE else None)  # fmt: skip
    eto = _counter(status, "eto", problems)
    wh = _counter(status, "wh", problems)
    power = None
    nrg = status.get("nrg")
    if isinstance(nrg, list) and len(nrg) > 11:
        value = finite_number(nrg[11])
        if value is not None and 0 <= value <= MAX_POWER_W:
            power = float(value)
    phases = _small_int(status.get("pnp"), 0, 3)
    trx_known, trx = "trx" in status, None
    if trx_known and status["trx"] is not None:
        trx = _small_int(status["trx"], 0, CARD_SLOTS)
        if trx is None:
            problems.append(f"trx: {describe(status['trx'])} is not a transaction")
            trx_known = False
    reboots = _small_int(status.get("rbc"), 0, 2**32 - 1)
    connected_ms = _small_int(status.get("lccfi"), 0, 2**53)
    uptime_ms = _small_int(status.get("rbt"), 0, 2**53)
    return Reading(
        connected=connected,
        eto=eto,
        wh=wh,
        power=power,
        phases=phases,
        trx=trx,
        trx_known=trx_known,
        card=card_label(status, trx) if trx_known else None,
        reboots=reboots,
        problems=tuple(problems),
        connected_ms=connected_ms,
        uptime_ms=uptime_ms,
    )
