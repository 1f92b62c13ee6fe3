"""What the simulated models report and accept: models, firmware, settings and ranges.

Data for simulated_charger: a model is the keys it lacks, so the catalogue's
model-awareness meets the same differences real chargers have.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from goe2mqtt.util.numbers import is_number


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Model:
    """What one kind of charger reports: type, variant, firmware and the keys it lacks."""

    typ: str
    variant: int  # kW: 11 (16 A) or 22 (32 A)
    firmware: str
    lacks: frozenset[str] = frozenset()
    legacy_cards: bool = False  # one "cards" array instead of c0n/c0e/...


# Keys firmware before 60 does not have (PV surplus fed from outside, newer settings).
NEWER_KEYS = frozenset(
    ("ids", "pgrid", "ppv", "pakku", "inva", "fup", "fzf", "pgt", "fst", "zfo", "frm", "psh",
     "sh", "tcl", "cus", "ffb", "upo", "fhz", "su")
)  # fmt: skip
MODELS: Mapping[str, Model] = {
    "home22": Model("go-eCharger_V4", 22, "60.4"),
    "home11": Model("go-eCharger_V4", 11, "60.4"),
    # A model without unlock-on-power-outage: no upo key, so no switch for it.
    "gemini22": Model("go-eCharger_Gemini", 22, "60.5", lacks=frozenset({"upo"})),
    "legacy": Model("go-eCharger_V3", 11, "055.8", lacks=NEWER_KEYS, legacy_cards=True),
}

# Writable settings beyond the seed ones: key -> (kind, low, high, nullable).
SETTINGS: Mapping[str, tuple[str, float, float, bool]] = {
    "lmo": ("code", 3, 5, False),
    "frm": ("code", 0, 2, False),
    "ust": ("code", 0, 2, False),
    "fup": ("bool", 0, 0, False),
    "fzf": ("bool", 0, 0, False),
    "acp": ("bool", 0, 0, False),
    "ara": ("bool", 0, 0, False),
    "upo": ("bool", 0, 0, False),
    "pgt": ("float", -1e6, 1e6, False),
    "fst": ("float", 0, 1e6, False),
    "spl3": ("float", 0, 1e6, False),
    "psh": ("float", 0, 1e6, False),
    "sh": ("float", 0, 1e6, False),
    "zfo": ("float", -1e6, 1e6, False),
    "ate": ("float", 0, 1e6, False),
    "att": ("int", 0, 86_399, False),
    "dwo": ("float", 0, 1e7, True),
    "tcl": ("int", 6, 32, True),
    "awe": ("bool", 0, 0, False),
    "awp": ("float", -100, 1000, False),
    "lbr": ("int", 0, 255, False),
    "lse": ("bool", 0, 0, False),
    "su": ("bool", 0, 0, False),
    "psmd": ("int", 0, 86_400_000, False),
    "mptwt": ("int", 0, 86_400_000, False),
    "mpwst": ("int", 0, 86_400_000, False),
    "mci": ("int", 0, 86_400_000, False),
    "mcpd": ("int", 0, 86_400_000, False),
}
DEFAULTS: Mapping[str, Any] = {
    "lmo": 3, "frm": 1, "ust": 0, "fup": False, "fzf": False, "acp": True, "ara": True,
    "upo": True, "pgt": 0.0, "fst": 1400.0, "spl3": 4200.0, "psh": 200.0, "sh": 0.0,
    "zfo": 0.0, "ate": 15000.0, "att": 25200, "dwo": None, "tcl": None, "awe": False,
    "awp": 10.0, "lbr": 200, "lse": False, "su": False, "psmd": 900_000, "mptwt": 600_000,
    "mpwst": 120_000, "mci": 900_000, "mcpd": 0,
}  # fmt: skip


def check_setting(key: str, value: Any) -> str | None:
    kind, low, high, nullable = SETTINGS[key]
    if value is None:
        return None if nullable else "expected a value"
    if kind == "bool":
        return None if isinstance(value, bool) else "expected true or false"
    if kind in ("code", "int") and not is_int(value):
        return "expected an integer"
    if not is_number(value):
        return "expected a number"
    return None if low <= value <= high else f"out of range {low:g}..{high:g}"
