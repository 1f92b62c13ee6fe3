"""Value readers: a raw go-e status -> one state.

Pure. Each returns None for "unknown" (go-e's null) and raises Unreadable, naming the
key, when the charger sent something that cannot be right.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Set
from typing import Any

from goe2mqtt.catalogue.codes import CAR_CONNECTED_STATES, CARD_SLOTS
from goe2mqtt.catalogue.model import StateValue, Status, Unreadable, ValueFn
from goe2mqtt.util.numbers import describe, finite_number, is_number
from goe2mqtt.util.text import clean_text


def _field(status: Status, key: str) -> Any:
    if key not in status:
        raise Unreadable(f"{key}: missing from the status")
    return status[key]


def _as_number(value: Any, key: str) -> int | float:
    if not is_number(value):
        raise Unreadable(f"{key}: expected a number, got {type(value).__name__}")
    number = finite_number(value)
    if number is None:
        raise Unreadable(f"{key}: {describe(value)} is out of range")
    return number


# The charger's firmware keeps its integers (codes, counts, settings) in 32 bits,
# signed or not: beyond that a value is not the charger's, and would reach MQTT as
# hundreds of digits (int(1e300)).
INT_RANGE = (-(2**31), 2**32 - 1)


def _as_int(value: Any, key: str) -> int:
    number = _as_number(value, key)
    if isinstance(number, float) and not number.is_integer():
        raise Unreadable(f"{key}: expected an integer, got {number}")
    if not INT_RANGE[0] <= number <= INT_RANGE[1]:
        raise Unreadable(f"{key}: {describe(number)} is beyond a 32-bit integer")
    return int(number)


def integer(key: str) -> ValueFn:
    def read(status: Status) -> StateValue:
        value = _field(status, key)
        return None if value is None else _as_int(value, key)

    return read


def number(key: str, *, scale: float = 1.0, digits: int | None = None) -> ValueFn:
    def read(status: Status) -> StateValue:
        value = _field(status, key)
        if value is None:
            return None
        result = _as_number(value, key) * scale
        return round(result, digits) if digits is not None else result

    return read


def flag(key: str) -> ValueFn:
    def read(status: Status) -> StateValue:
        value = _field(status, key)
        if value is None or isinstance(value, bool):
            return value
        raise Unreadable(f"{key}: expected true/false, got {type(value).__name__}")

    return read


def text(key: str) -> ValueFn:
    def read(status: Status) -> StateValue:
        value = _field(status, key)
        if value is None or isinstance(value, str):
            return value
        raise Unreadable(f"{key}: expected a string, got {type(value).__name__}")

    return read


def enum(key: str, names: Mapping[int, str]) -> ValueFn:
    """A code with a closed set of names (an HA enum sensor or select)."""

    def read(status: Status) -> StateValue:
        value = _field(status, key)
        if value is None:
            return None
        code = _as_int(value, key)
        if code not in names:
            raise Unreadable(f"{key}: unknown code {code}")
        return names[code]

    return read


def label(key: str, names: Mapping[int, str]) -> ValueFn:
    """A code whose list grows with firmware: unknown codes show as code_N, not as an error."""

    def read(status: Status) -> StateValue:
        value = _field(status, key)
        if value is None:
            return None
        code = _as_int(value, key)
        return names.get(code, f"code_{code}")

    return read


def element(key: str, index: int, *, digits: int | None = None) -> ValueFn:
    """One number out of an array value such as nrg or tma."""

    def read(status: Status) -> StateValue:
        values = _field(status, key)
        if values is None:
            return None
        if not isinstance(values, list):
            raise Unreadable(f"{key}: expected an array, got {type(values).__name__}")
        if index >= len(values):
            raise Unreadable(f"{key}: has {len(values)} elements, needs {index + 1}")
        if values[index] is None:
            return None
        result = _as_number(values[index], f"{key}[{index}]")
        return round(result, digits) if digits is not None else result

    return read


def car_code(status: Status) -> int | None:
    """The car state's code as car_status reads it (a 32-bit integer: 2.0 is 2), None
    for anything else: everything that acts on or shows the car reads it so (the
    button took true for 1, "no car"; /metrics failed on 10**400)."""
    try:
        code = integer("car")(status)  # missing: Unreadable too
    except Unreadable:
        return None
    return code if isinstance(code, int) else None


def car_connected(status: Status) -> StateValue:
    car = integer("car")(status)
    return None if car is None else car in CAR_CONNECTED_STATES


def charger_max_current(status: Status) -> StateValue:
    # What the integration showed: the current the car may draw now, 0 while not allowed.
    allowed = flag("alw")(status)
    if allowed is None:
        return None
    return integer("amp")(status) if allowed else 0


def equals(key: str, on: Any) -> ValueFn:
    """A switch over a code: True when the key holds `on`; None for codes it does not know."""

    def read(status: Status) -> StateValue:
        value = _field(status, key)
        if value is None:
            return None
        if isinstance(value, bool):
            return bool(value == on)
        code = _as_int(value, key)
        return code == on if code in (0, 1) else None

    return read


def time_of_day(key: str) -> ValueFn:
    """Seconds since midnight as HH:MM (what people type and read)."""

    def read(status: Status) -> StateValue:
        raw = _field(status, key)
        if raw is None:
            return None
        value = _as_int(raw, key)
        if not 0 <= value < 86_400:
            raise Unreadable(f"{key}: {value} is not a time of day")
        return f"{value // 3600:02d}:{value % 3600 // 60:02d}"

    return read


def count_true(key: str, indices: tuple[int, ...]) -> ValueFn:
    """How many of some booleans of an array are true (phases of pha)."""

    def read(status: Status) -> StateValue:
        values = _field(status, key)
        if values is None:
            return None
        if not isinstance(values, list) or len(values) <= max(indices):
            raise Unreadable(f"{key}: expected an array of {max(indices) + 1} booleans")
        return sum(1 for index in indices if values[index] is True)

    return read


def charging_duration(status: Status) -> StateValue:
    """cdi: null while not charging, else {"type": 0 counting | 1 finished, "value": ms}."""
    value = _field(status, "cdi")
    if value is None:
        return None
    if not isinstance(value, dict) or "value" not in value:
        raise Unreadable("cdi: expected an object with a value")
    milliseconds = value["value"]
    return None if milliseconds is None else round(_as_number(milliseconds, "cdi") / 1000)


# --- RFID cards: firmware 60 has c0n/c0e per slot, older ones one "cards" array ---------


def card_field(status: Status, slot: int, field: str) -> Any:
    """A card's name or energy in either generation's keys; None where it has none."""
    flat = f"c{slot}{'n' if field == 'name' else 'e'}"
    if flat in status:
        return status[flat]
    cards = status.get("cards")
    if isinstance(cards, list) and slot < len(cards) and isinstance(cards[slot], dict):
        return cards[slot].get(field)
    return None


def card_keys(slot: int) -> tuple[str, str]:
    return f"c{slot}n", f"c{slot}e"


def has_card(slot: int) -> Callable[[Set[str]], bool]:
    """Whether a charger that reports these keys has the slot (either generation's)."""

    def present(keys: Set[str]) -> bool:
        return card_keys(slot)[0] in keys or "cards" in keys

    return present


def card_name(slot: int) -> ValueFn:
    def read(status: Status) -> StateValue:
        name = card_field(status, slot, "name")
        if name is None or isinstance(name, str):
            return name
        raise Unreadable(f"card {slot}: name is not text")

    return read


def card_energy(slot: int) -> ValueFn:
    def read(status: Status) -> StateValue:
        energy = card_field(status, slot, "energy")
        if energy is None:
            return None
        return round(_as_number(energy, f"card {slot} energy") / 1000, 2)

    return read


# A card's name in an entity name: plain text on one line, this long at most.
CARD_TITLE_LENGTH = 32


def card_title(status: Status, slot: int) -> str | None:
    """The card's name as entity names show it, or None where the slot has none that
    stands for it alone: unset, not text, no letter or digit left once cleaned (old
    Home Assistant would make "garage_energy_this_month" of "★ energy this month",
    the charger's own sensor's id), or shared with another slot (two "Anna energy
    this month" would not say which is which)."""

    def title(name: Any) -> str:
        if not isinstance(name, str):
            return ""
        return " ".join(clean_text(name).split())[:CARD_TITLE_LENGTH].strip()

    own = title(card_field(status, slot, "name"))
    if not any(c.isalnum() for c in own):
        return None
    for other in range(CARD_SLOTS):
        if other != slot and title(card_field(status, other, "name")).casefold() == own.casefold():
            return None
    return own


# Not "none": Home Assistant's select takes the payload "None" (any case) as unknown.
NO_TRANSACTION = "no_transaction"


def transaction_choices(status: Status) -> dict[Any, str]:
    """trx value -> option: no transaction, no card, then each card slot by its name.

    A name stands for its card only when it is set and unique; otherwise card_N.
    """
    names = [card_field(status, slot, "name") for slot in range(CARD_SLOTS)]
    taken = {NO_TRANSACTION, "no_card", "none"}
    choices: dict[Any, str] = {None: NO_TRANSACTION, 0: "no_card"}
    for slot, name in enumerate(names):
        label = clean_text(name).strip() if isinstance(name, str) else ""
        if not label or label.lower() in taken or names.count(name) > 1:
            label = f"card_{slot}"
        taken.add(label.lower())
        choices[slot + 1] = label
    return choices


def transaction(status: Status) -> StateValue:
    value = _field(status, "trx")
    if value is None:
        return NO_TRANSACTION
    code = _as_int(value, "trx")
    return transaction_choices(status).get(code, f"card_{code - 1}")
