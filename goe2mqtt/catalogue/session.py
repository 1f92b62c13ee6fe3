"""The session ledger's figures: what the books say, not what the charger's counters say.

These entities read added keys (@session_..., @month_..., @card_N_month_energy) that
the bridge's ledger fills (goe2mqtt/ledger): energy from the total counter `eto`,
cost from the tariff, per card from the ledger's own sessions (not c0e..c9e, which
some firmware reports wrong). Like every entity added since the integration's floor
they are diagnostic (the device page stays readable); Home Assistant's statistics
take them all the same. Energy entities are `total_increasing` (a new session or a
new month is a reset, which Home Assistant's energy dashboard understands);
cost entities are `monetary` with state class `total`, their unit the tariff's
currency (set per charger at discovery). A card's entity is named after the card
("Anna energy this month") while its key, and so its entity id, stays the slot's.
"""

from __future__ import annotations

from dataclasses import replace

from goe2mqtt.catalogue.codes import CARD_SLOTS
from goe2mqtt.catalogue.model import EntityDescription, NameFn, StateValue, Status
from goe2mqtt.catalogue.readers import card_keys, card_title, has_card, number, text

# The added keys, and their values while the books hold nothing.
SESSION_ENERGY = "@session_energy"
SESSION_COST = "@session_cost"
LAST_ENERGY = "@last_session_energy"
LAST_COST = "@last_session_cost"
LAST_DURATION = "@last_session_duration"
LAST_CARD = "@last_session_card"
MONTH_ENERGY = "@month_energy"
MONTH_COST = "@month_cost"


def card_month_key(slot: int) -> str:
    return f"@card_{slot}_month_energy"


# What empty books say: no session yet, nothing charged this month (a cost only with
# a tariff, which the books know).
SESSION_OFF: dict[str, StateValue] = {
    SESSION_ENERGY: None,
    SESSION_COST: None,
    LAST_ENERGY: None,
    LAST_COST: None,
    LAST_DURATION: None,
    LAST_CARD: None,
    MONTH_ENERGY: 0.0,
    MONTH_COST: None,
    **{card_month_key(slot): 0.0 for slot in range(CARD_SLOTS)},
}


def _energy(
    key: str, added: str, name: str, *, state_class: str | None, doc: str = "", enabled: bool = True
) -> EntityDescription:
    return EntityDescription(
        key=key,
        component="sensor",
        entity_category="diagnostic",
        name=name,
        reads=(added,),
        value=number(added, digits=3),
        device_class="energy",
        state_class=state_class,
        unit="kWh",
        precision=2,
        icon="mdi:ev-station",
        enabled_by_default=enabled,
        doc=doc,
    )


def _cost(
    key: str, added: str, name: str, *, state_class: str | None, doc: str = ""
) -> EntityDescription:
    """The books' figure in money: an energy figure's shape, in the tariff's currency."""
    return replace(
        _energy(key, added, name, state_class=state_class, doc=doc),
        value=number(added, digits=2),
        device_class="monetary",  # unit: the charger's tariff currency (discovery)
        unit="EUR",
        plausible=(-1e9, 1e9),  # the ledger computed it from sane energy and prices
        icon="mdi:cash",
    )


def _month_name(slot: int) -> NameFn:
    def name(status: Status) -> str | None:
        title = card_title(status, slot)
        return None if title is None else f"{title} energy this month"

    return name


def _card_month(slot: int) -> EntityDescription:
    """A card's energy this month: the month's energy entity, per slot, named after the card."""
    energy = _energy(
        f"card_{slot}_energy_this_month",
        card_month_key(slot),
        f"Card {slot} energy this month",  # until the card has a name of its own
        state_class="total_increasing",
        doc="named after the card (c0n), from the ledger's sessions with it (not c0e)"
        if slot == 0
        else "",
        enabled=slot == 0,
    )
    return replace(
        energy,
        name_from=_month_name(slot),
        # Every slot's name: a name another card shares stands for neither.
        name_reads=(*(card_keys(other)[0] for other in range(CARD_SLOTS)), "cards"),
        present_if=has_card(slot),
        icon="mdi:card-account-details-outline",
    )


SESSION: tuple[EntityDescription, ...] = (
    _energy("session_energy", SESSION_ENERGY, "Session energy", state_class="total_increasing",
            doc="the open session's (else the last one's), from eto"),
    _cost("session_cost", SESSION_COST, "Session cost", state_class="total",
          doc="the open session's so far, at each interval's price"),
    _energy("last_session_energy", LAST_ENERGY, "Last session energy", state_class=None),
    _cost("last_session_cost", LAST_COST, "Last session cost", state_class=None),
    EntityDescription(
        key="last_session_duration",
        component="sensor",
        entity_category="diagnostic",
        name="Last session duration",
        reads=(LAST_DURATION,),
        value=number(LAST_DURATION, digits=0),
        device_class="duration",
        unit="s",
        icon="mdi:timer-outline",
    ),
    EntityDescription(
        key="last_session_card",
        component="sensor",
        entity_category="diagnostic",
        name="Last session card",
        reads=(LAST_CARD,),
        value=text(LAST_CARD),
        icon="mdi:card-account-details-outline",
        doc="the card's name, app, or none",
    ),
    _energy("energy_this_month", MONTH_ENERGY, "Energy this month",
            state_class="total_increasing", doc="the ledger's sessions this month"),
    _cost("cost_this_month", MONTH_COST, "Cost this month", state_class="total"),
    *(_card_month(slot) for slot in range(CARD_SLOTS)),
)  # fmt: skip
