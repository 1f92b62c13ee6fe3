"""Access: who may charge (acs), the running transaction and the ten RFID card slots.

Card keys differ by firmware: 60.x has c0n/c0e ... c9n/c9e, older firmware one
"cards" array of {name, energy}; the readers take either.
"""

from __future__ import annotations

from goe2mqtt.catalogue.codes import ACCESS_MODES, CARD_SLOTS
from goe2mqtt.catalogue.model import EntityDescription, Write
from goe2mqtt.catalogue.readers import (
    card_energy,
    card_keys,
    card_name,
    enum,
    equals,
    has_card,
    transaction,
    transaction_choices,
)


def _card_entities(slot: int) -> tuple[EntityDescription, EntityDescription]:
    present = has_card(slot)
    return (
        EntityDescription(
            key=f"card_{slot}_name",
            component="sensor",
            name=f"Card {slot} name",
            reads=(card_keys(slot)[0], "cards"),
            value=card_name(slot),
            present_if=present,
            entity_category="diagnostic",
            enabled_by_default=False,
            icon="mdi:card-account-details-outline",
        ),
        EntityDescription(
            key=f"card_{slot}_energy",
            component="sensor",
            name=f"Card {slot} energy",
            reads=(card_keys(slot)[1], "cards"),
            value=card_energy(slot),
            device_class="energy",
            state_class="total_increasing",
            unit="kWh",
            precision=2,
            present_if=present,
            entity_category="diagnostic",
            enabled_by_default=slot == 0,
            doc="energy charged with this card" if slot == 0 else "",
        ),
    )


ACCESS: tuple[EntityDescription, ...] = (
    EntityDescription(
        key="charger_access",
        component="sensor",
        name="Charger access",
        reads=("acs",),
        value=enum("acs", ACCESS_MODES),
        device_class="enum",
        options=tuple(ACCESS_MODES.values()),
        icon="mdi:lock-outline",
    ),
    EntityDescription(
        key="authentication_required",
        component="switch",
        name="Authentication required",
        reads=("acs",),
        value=equals("acs", 1),
        write=Write(key="acs", kind="switch", on=1, off=0),
        entity_category="config",
        icon="mdi:account-lock-outline",
        doc="on: wait for a card or the app (acs 1); off: open (acs 0)",
    ),
    EntityDescription(
        key="transaction",
        component="select",
        name="Transaction",
        # Options are the card names: it reads them too, but needs only trx to exist.
        reads=("trx", *(key for slot in range(CARD_SLOTS) for key in card_keys(slot)), "cards"),
        present_if=lambda keys: "trx" in keys,
        value=transaction,
        write=Write(key="trx", kind="select", choices=transaction_choices),
        entity_category="config",
        icon="mdi:card-account-details-outline",
        doc="no_transaction (null), no_card (0: authenticate all users) or a card by its name",
    ),
    *(entity for slot in range(CARD_SLOTS) for entity in _card_entities(slot)),
)
