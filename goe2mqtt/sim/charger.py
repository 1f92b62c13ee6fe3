"""One simulated go-e charger: its car, its settings, its models and firmware.

It keeps state so a set really changes what the next status returns, and plays a
model (HOME 11 or 22 kW, Gemini 22 kW, or an old firmware) so the keys it reports -
and so the entities goe2mqtt announces - differ as they do on real chargers.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from goe2mqtt.sim.models import (
    DEFAULTS,
    MODELS,
    SETTINGS,
    Model,
    check_setting,
    is_int,
)
from goe2mqtt.util.numbers import is_number

__all__ = ["MODELS", "Faults", "Model", "SimulatedCharger"]

VOLTAGES = (230.2, 229.8, 231.1)
IDS_HOLD = 10.0  # s the charger keeps PV data written to ids
CARD_SLOTS = 10


@dataclass
class Faults:
    """What goes wrong for one charger; tests and the soak script flip these."""

    http_status: int | None = None  # answer with this status (403, 404, 500, ...)
    delay: float = 0.0  # seconds before answering: drives client timeouts
    garbage: bool = False  # 200 with a body that is not JSON
    success_false: bool = False  # 200 with {"success": false}
    body: str | None = None  # 200 with exactly this text (truncated JSON, huge answers)
    only: str | None = None  # "status" or "set": the faults above hit only that call
    times: int | None = None  # the faults above heal after this many hits
    retry_after: str | None = None  # Retry-After header sent with http_status (429, 503)
    reason: str | None = None  # the "reason" in the body of an http_status answer
    reject_sets: bool = False  # 422 on every set
    drop_sets: bool = False  # 202 on a set, but the charger never applies it
    # The status as every transport tells it: values replaced by these, keys left out.
    values: dict[str, Any] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    ws: str | None = None  # the websocket misbehaves: one of sim.websocket.WS_FAULTS

    def hits(self, call: str) -> bool:
        """Whether a transport fault strikes this call (and count it)."""
        if self.only is not None and self.only != call:
            return False
        configured = (
            self.http_status is not None
            or self.delay > 0
            or self.garbage
            or self.success_false
            or self.body is not None
        )
        if not configured or (self.times is not None and self.times <= 0):
            return False
        if self.times is not None:
            self.times -= 1
        return True


@dataclass
class SimulatedCharger:
    serial: str
    token: str | None = None  # None: no auth (the local API flavour)
    friendly_name: str | None = None
    clock: Callable[[], float] = time.monotonic
    model_name: str = "home22"
    password: str | None = None  # the charger's own (websocket); None: no auth asked
    hash_kind: Literal["pbkdf2", "bcrypt"] = "pbkdf2"

    # the car
    plugged: bool = False
    car_full: bool = False
    error_code: int = 0
    # settings the API writes
    amp: int = 16
    mca: int = 6
    ama: int | None = None  # None: the variant's maximum
    frc: int = 0
    psm: int = 0
    acs: int = 0
    trx: int | None = None
    # counters
    wh: float = 0.0
    eto: float = 1_234_567.0
    reboots: int = 7
    card_names: list[str] = field(default_factory=lambda: ["Alice", "Bob", *[""] * 8])
    card_energy: list[float] = field(default_factory=lambda: [52_300.0, 1_200.0, *[0.0] * 8])

    settings: dict[str, Any] = field(default_factory=lambda: dict(DEFAULTS))
    faults: Faults = field(default_factory=Faults)
    set_calls: list[dict[str, Any]] = field(default_factory=list)  # sets that reached it
    dropped_sets: list[dict[str, Any]] = field(default_factory=list)  # 202 but lost
    set_requests: int = 0  # every /api/set request, faulty or not
    status_calls: int = 0
    last_filter: str | None = None  # the filter= of the last status call
    ids: dict[str, float] | None = None  # PV data last written, and when
    ids_at: float = 0.0
    _advanced_at: float | None = None
    _booted_at: float = 0.0

    def __post_init__(self) -> None:
        if self.model_name not in MODELS:
            raise ValueError(f"unknown model {self.model_name!r}: one of {', '.join(MODELS)}")
        if self.friendly_name is None:
            self.friendly_name = f"go-e {self.serial}"
        if self.ama is None:
            self.ama = 16 if self.model.variant == 11 else 32
        self.amp = min(self.amp, self.ama)
        self._booted_at = self.clock()

    @property
    def model(self) -> Model:
        return MODELS[self.model_name]

    @property
    def firmware(self) -> str:
        return self.model.firmware

    # --- the car's life ---------------------------------------------------------------

    def plug_in(self, *, auth_required: bool = False) -> None:
        self._advance()
        self.plugged, self.car_full, self.wh = True, False, 0.0
        if auth_required:
            self.acs, self.trx = 1, None

    def unplug(self) -> None:
        self._advance()
        self.plugged, self.trx = False, None
        if self.frc == 2:
            self.frc = 0  # a forced start ends with the session, as on the real charger

    def freeze(self) -> None:
        """Stop this charger's clock: energy then flows only by deliver() (a test's
        known amounts), not by the seconds a test happens to take."""
        self._advance()
        stopped = self.clock()
        self.clock = lambda: stopped

    def deliver(self, wh: float) -> None:
        """Energy charged now (tests and the demo: a known amount, whatever the clock)."""
        self._advance()
        self.wh += wh
        self.eto += wh
        if self.trx:
            self.card_energy[self.trx - 1] += wh

    def _limit_reached(self) -> bool:
        limit = self.settings["dwo"]
        return limit is not None and self.wh >= limit

    @property
    def car(self) -> int:
        if self.error_code:
            return 5
        if not self.plugged:
            return 1
        if self.acs == 1 and self.trx is None:
            return 3
        if self.frc == 1 or (self.frc == 0 and (self.car_full or self._limit_reached())):
            return 4
        return 2

    @property
    def active_phases(self) -> int:
        return 1 if self.psm == 1 else 3

    @property
    def effective_current(self) -> int:
        limit = self.settings["tcl"]
        return self.amp if limit is None else min(self.amp, limit)

    def currents(self) -> list[float]:
        if self.car != 2:
            return [0.0, 0.0, 0.0]
        amps = float(self.effective_current)
        return [amps if n < self.active_phases else 0.0 for n in range(3)]

    def power(self) -> float:
        return sum(u * i for u, i in zip(VOLTAGES, self.currents(), strict=True))

    def _advance(self) -> None:
        """Count energy for the time since the last look (lazy: costs nothing while unseen)."""
        now = self.clock()
        if self._advanced_at is not None:
            energy = self.power() * (now - self._advanced_at) / 3600.0
            self.wh += energy
            self.eto += energy
            if self.trx:
                self.card_energy[self.trx - 1] += energy
        self._advanced_at = now

    def _model_status(self) -> int:
        car = self.car
        if car == 3:
            return 2
        if self.frc == 1:
            return 4
        if car == 4 and self._limit_reached():
            return 6
        if car == 2 and self.frc == 2:
            return 3
        return 15

    # --- the API ----------------------------------------------------------------------

    def _ids_values(self) -> dict[str, Any]:
        fresh = self.ids is not None and self.clock() - self.ids_at <= IDS_HOLD
        data = self.ids if fresh and self.ids is not None else {}
        return {
            "pgrid": data.get("pGrid"),
            "ppv": data.get("pPv"),
            "pakku": data.get("pAkku"),
            "inva": round((self.clock() - self.ids_at) * 1000) if fresh else None,
        }

    def _cards(self) -> dict[str, Any]:
        if self.model.legacy_cards:
            return {
                "cards": [
                    {"name": name, "energy": int(energy), "cardId": bool(name)}
                    for name, energy in zip(self.card_names, self.card_energy, strict=True)
                ]
            }
        cards: dict[str, Any] = {}
        for slot in range(CARD_SLOTS):
            cards[f"c{slot}n"] = self.card_names[slot]
            cards[f"c{slot}e"] = int(self.card_energy[slot])
        return cards

    def status(self, keys: Iterable[str] | None = None) -> dict[str, Any]:
        self._advance()
        currents = self.currents()
        powers = [round(u * i, 1) for u, i in zip(VOLTAGES, currents, strict=True)]
        charging = self.car == 2
        after = [charging and current > 0 for current in currents]
        uptime_ms = round((self.clock() - self._booted_at) * 1000)
        full: dict[str, Any] = {
            "car": self.car,
            "alw": charging,
            "amp": self.amp,
            "acu": self.effective_current if charging else 0,
            "mca": self.mca,
            "ama": self.ama,
            "var": self.model.variant,
            "cbl": 32 if self.plugged else None,
            "adi": False,
            "amt": 32,
            "wh": round(self.wh, 3),
            "eto": int(self.eto),
            "etop": int(self.eto),
            "tpa": round(sum(powers), 1),
            "psm": self.psm,
            "pnp": self.active_phases if charging else 0,
            "pha": [*after, True, True, True],
            "fsp": self.psm == 1,
            "pwm": 1 if self.psm == 1 else 0,
            "acs": self.acs,
            "frc": self.frc,
            "trx": self.trx,
            "err": self.error_code,
            "modelStatus": self._model_status(),
            "fna": self.friendly_name,
            "nrg": [*VOLTAGES, 0.0, *currents, *powers, 0.0, round(sum(powers), 1),
                    100, 100, 100, 0],
            "tma": [24.5, 26.0],
            "rssi": -61,
            "wst": 3,
            "rbc": self.reboots,
            "rbt": uptime_ms,
            "cdi": {"type": 0, "value": 0} if charging else None,
            "lck": self.settings["ust"],
            "cus": 3 if self.plugged else 1,
            "ffb": 0,
            "fhz": 50.01,
            "mmp": 11_080.0,
            "fwv": self.firmware,
            "sse": self.serial,
            "typ": self.model.typ,
            **self.settings,
            **self._ids_values(),
            **self._cards(),
        }  # fmt: skip
        for key in self.model.lacks:
            full.pop(key, None)
        # What the charger says, over every transport (HTTP, websocket, its own MQTT).
        full.update(self.faults.values)
        for key in self.faults.missing:
            full.pop(key, None)
        if keys is None:
            return full
        wanted = set(keys)
        return {k: v for k, v in full.items() if k in wanted}

    def apply_set(self, raw: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        """Apply JSON-encoded values; (HTTP status, per-key answer) as the cloud gives them."""
        self._advance()
        answers: dict[str, Any] = {}
        decoded: dict[str, Any] = {}
        for key, text in raw.items():
            try:
                value = json.loads(text)
            except ValueError:
                decoded[key] = text
                answers[key] = "value is not JSON"
                continue
            decoded[key] = value
            problem = self._check(key, value)
            answers[key] = problem or True
            if problem is None:
                self._apply(key, value)
        self.set_calls.append(decoded)
        accepted = any(answer is True for answer in answers.values())
        return (202 if accepted else 422), answers

    def _apply(self, key: str, value: Any) -> None:
        if key == "ids":
            self.ids, self.ids_at = dict(value), self.clock()
        elif key == "rst":
            self.reboots += 1
            self._booted_at = self.clock()
        elif key in SETTINGS:
            self.settings[key] = value
        else:
            setattr(self, _SEED_SETTABLE[key], value)

    def _check(self, key: str, value: Any) -> str | None:
        if key in self.model.lacks or (
            key not in _SEED_SETTABLE and key not in SETTINGS and key not in ("ids", "rst")
        ):
            return "unknown or read-only key"
        if key == "rst":
            return None
        if key == "ids":
            ok = (
                isinstance(value, dict)
                and is_number(value.get("pGrid"))
                and all(k in ("pGrid", "pPv", "pAkku") and is_number(v) for k, v in value.items())
            )
            return None if ok else "expected {pGrid, pPv, pAkku} numbers"
        if key in SETTINGS:
            return check_setting(key, value)
        if key == "fna":
            return None if isinstance(value, str) and len(value) <= 32 else "expected a string"
        if key == "trx":
            ok = value is None or (is_int(value) and 0 <= value <= CARD_SLOTS)
            return None if ok else "expected null or a card index"
        if not is_int(value):
            return "expected an integer"
        variant_max = 16 if self.model.variant == 11 else 32
        assert self.ama is not None
        low, high = {
            "amp": (self.mca, self.ama), "ama": (6, variant_max), "mca": (6, self.ama),
        }.get(key, (0, 2))  # fmt: skip
        return None if low <= value <= high else f"out of range {low}..{high}"


_SEED_SETTABLE = {
    "amp": "amp",
    "frc": "frc",
    "psm": "psm",
    "acs": "acs",
    "trx": "trx",
    "fna": "friendly_name",
    "ama": "ama",
    "mca": "mca",
}
