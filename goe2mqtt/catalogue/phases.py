"""Phases: how many, which, the switching mode and the timings of the switch."""

from __future__ import annotations

from goe2mqtt.catalogue.codes import PHA_AFTER, PHA_BEFORE, PHASE_MODES, PHASE_WISHES
from goe2mqtt.catalogue.model import EntityDescription, Write, key_of
from goe2mqtt.catalogue.readers import count_true, enum, flag, integer, label, number


def milliseconds_setting(
    key: str, name: str, *, maximum: float, doc: str = ""
) -> EntityDescription:
    """A go-e duration setting in ms, shown and set in seconds (off by default)."""
    return EntityDescription(
        key=key_of(name),
        component="number",
        name=name,
        reads=(key,),
        value=number(key, scale=0.001, digits=1),
        device_class="duration",
        unit="s",
        write=Write(
            key=key,
            kind="number",
            minimum=0,
            maximum=maximum,
            step=1,
            scale=1000,
            integer=True,
            unit_hint="ms",
        ),
        entity_category="config",
        enabled_by_default=False,
        doc=doc,
    )


PHASES: tuple[EntityDescription, ...] = (
    EntityDescription(
        key="phase_switch_mode",
        component="sensor",
        name="Phase switch mode",
        reads=("psm",),
        value=enum("psm", PHASE_MODES),
        device_class="enum",
        options=tuple(PHASE_MODES.values()),
        # The seed's sensor, kept for its users; the Phase mode select shows the same.
        entity_category="diagnostic",
        enabled_by_default=False,
        icon="mdi:sine-wave",
        doc="the same as the Phase mode select (kept for the seed's users)",
    ),
    EntityDescription(
        key="phases_number_connected",
        component="sensor",
        name="Phases number connected",
        reads=("pnp",),
        value=integer("pnp"),
        state_class="measurement",
        icon="mdi:numeric",
    ),
    EntityDescription(
        key="phase_mode",
        component="select",
        name="Phase mode",
        reads=("psm",),
        value=enum("psm", PHASE_MODES),
        options=tuple(PHASE_MODES.values()),
        command="set_phase",
        write=Write(key="psm", kind="select", choices=PHASE_MODES),
        entity_category="config",
        icon="mdi:sine-wave",
    ),
    EntityDescription(
        key="phases_before_contactor",
        component="sensor",
        name="Phases before contactor",
        reads=("pha",),
        value=count_true("pha", PHA_BEFORE),
        entity_category="diagnostic",
        icon="mdi:sine-wave",
        doc="phases with voltage at the supply side (0-3)",
    ),
    EntityDescription(
        key="phases_after_contactor",
        component="sensor",
        name="Phases after contactor",
        reads=("pha",),
        value=count_true("pha", PHA_AFTER),
        entity_category="diagnostic",
        icon="mdi:sine-wave",
        doc="phases switched to the car (0-3)",
    ),
    EntityDescription(
        key="single_phase_forced",
        component="binary_sensor",
        name="Single phase forced",
        reads=("fsp",),
        value=flag("fsp"),
        entity_category="diagnostic",
        enabled_by_default=False,
    ),
    EntityDescription(
        key="phase_wish",
        component="sensor",
        name="Phase wish",
        reads=("pwm",),
        value=label("pwm", PHASE_WISHES),
        entity_category="diagnostic",
        enabled_by_default=False,
    ),
    milliseconds_setting("psmd", "Force single phase duration", maximum=86_400,
                  doc="how long 1 phase is kept after the PV logic switched to it"),
    milliseconds_setting("mptwt", "Min phase toggle wait time", maximum=86_400),
    milliseconds_setting("mpwst", "Min phase wish switch time", maximum=86_400),
)  # fmt: skip
