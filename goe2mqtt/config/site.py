"""A site's section of the config: one fuse (or import cap) shared by several chargers.

The controller (goe2mqtt/site) reads these; what is checked here is what a site can be
checked for without a charger or a meter: the names, the limits, the timings.
"""

from __future__ import annotations

from typing import Any, Literal

from goe2mqtt.config.schema import field, key_check, section_check
from goe2mqtt.config.section import NAME_PATTERN, TOPIC_MAX_LENGTH, TOPIC_PATTERN, Section
from goe2mqtt.config.values import Context

GOE_MIN_CURRENT = 6  # A: the least a charging car draws (IEC 61851); never written lower
GOE_MAX_CURRENT = 32  # A: the 22 kW charger's ceiling


def fallback_problems(fallback: int, chargers: int, fuse: float | None) -> list[str]:
    """A fallback the site's chargers alone would draw beyond the fuse: with the meter
    silent the site cannot see the house, so the fallback must at least fit the fuse
    with nothing else on (0 pauses them, which always does). An import_limit is a
    price, not a fuse: it is not held to this."""
    total = fallback * chargers
    if fuse is None or total <= fuse:
        return []
    most = int(fuse // chargers)
    return [
        f"fallback_current: {chargers} chargers at {fallback} A are {total} A, above the"
        f" fuse of {fuse:g} A: with the meter silent they alone would overload it; set"
        " 0 (pause them)" + (f" or at most {most} A" if most >= GOE_MIN_CURRENT else "")
    ]


def blind_problems(limit: float | None, meter_timeout: float) -> list[str]:
    """A pv_blind_limit below meter_timeout means nothing: the site falls back only once
    the meter has been silent meter_timeout, and pauses no sooner."""
    if limit is None or limit >= meter_timeout:
        return []
    return [
        f"pv_blind_limit: {limit:g} s is below meter_timeout {meter_timeout:g} s: the site"
        " falls back only after meter_timeout; set at least that, null (never pause),"
        " or fallback_current: 0 to pause as soon as the meter is silent"
    ]


class SiteChargerSettings(Section):
    name: str = field(pattern=NAME_PATTERN, max_length=64)
    # 1 is served first; chargers of one priority share equally.
    priority: int = field(default=1, ge=1, le=99)
    min_current: int = field(default=GOE_MIN_CURRENT, ge=GOE_MIN_CURRENT, le=GOE_MAX_CURRENT)
    max_current: int = field(default=GOE_MAX_CURRENT, ge=GOE_MIN_CURRENT, le=GOE_MAX_CURRENT)

    @section_check
    def _min_below_max(self, context: Context) -> None:
        if self.min_current > self.max_current:
            raise ValueError(
                f"min_current: {self.min_current} A is above max_current {self.max_current} A"
            )


class SiteSettings(Section):
    name: str = field(pattern=NAME_PATTERN, max_length=64)
    fuse: float | None = field(default=None, gt=0, le=1000)  # A per phase
    import_limit: float | None = field(default=None, gt=0, le=1_000_000)  # W
    meter_topic: str = field(pattern=TOPIC_PATTERN, max_length=TOPIC_MAX_LENGTH)
    meter_timeout: float = field(default=30.0, ge=1, le=3600)
    # A per charging charger while the meter is silent or wrong; 0 pauses them.
    fallback_current: int = field(default=GOE_MIN_CURRENT, ge=0, le=GOE_MAX_CURRENT)
    interval: float = field(default=5.0, ge=1, le=300)
    mode: Literal["fuse", "pv", "off"] = "fuse"
    # A paused charger stays paused this long, and resumes once room for its minimum
    # has been there this long (pv: once the sun has given its minimum this long).
    resume_after: float = field(default=60.0, ge=0, le=3600)
    ramp_up: int = field(default=2, ge=1, le=GOE_MAX_CURRENT)  # A per decision, upwards
    # A meter that measures both ways (PV, a battery): negative = export. Off, a negative
    # reading is taken for a broken meter (fallback) - unless the site is in mode pv,
    # which needs the export.
    meter_exports: bool = False
    # pv: a running charger keeps its minimum while the import it causes stays within
    # this (W); a start keeps its minimum this long (s), sun or not (the fuse holds).
    pv_stop_hysteresis: float = field(default=300.0, ge=0, le=100_000)
    pv_min_charge_time: float = field(default=300.0, ge=0, le=86_400)
    # pv: no valid meter reading this long (s) and the chargers pause (the fallback
    # current would charge them from the grid all night); None: never, the fallback holds.
    pv_blind_limit: float | None = field(default=900.0, ge=0, le=86_400)
    chargers: tuple[SiteChargerSettings, ...] = field(min_length=1)

    @key_check("mode", before=True)
    @staticmethod
    def _off_as_yaml_reads_it(value: Any) -> Any:
        # YAML 1.1 reads an unquoted `mode: off` as false: "should be 'fuse', 'pv' or 'off'"
        # answered the very edit the README suggests.
        return "off" if value is False else value

    @section_check
    def _limits(self, context: Context) -> None:
        problems: list[str] = []
        if self.fuse is None and self.import_limit is None:
            problems.append("fuse: required unless import_limit is set (A per phase)")
        if self.fallback_current not in (0, *range(GOE_MIN_CURRENT, GOE_MAX_CURRENT + 1)):
            problems.append(
                f"fallback_current: {self.fallback_current} A: 0 (pause) or at least"
                f" {GOE_MIN_CURRENT} A"
            )
        problems.extend(fallback_problems(self.fallback_current, len(self.chargers), self.fuse))
        problems.extend(blind_problems(self.pv_blind_limit, self.meter_timeout))
        for charger in self.chargers:
            if self.fuse is not None and self.fuse < charger.min_current:
                problems.append(
                    f"fuse: {self.fuse:g} A is below charger {charger.name}'s min_current"
                    f" {charger.min_current} A: it could never charge"
                )
        if problems:
            raise ValueError("\n".join(problems))

    @property
    def fuse_limited(self) -> bool:
        return self.fuse is not None
