"""/metrics from a bridge's state: names, labels and units, without a process."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from goe2mqtt.bridge.operator_view import cause_word
from goe2mqtt.commands.outcomes import Durations, outcome_of
from goe2mqtt.web import metrics, scrape
from goe2mqtt.web.metrics import exposition, take_snapshot
from goe2mqtt.web.scrape import STEP, Scraper
from goe2mqtt.web.view import ChargerRow, CommandLine, DurationCounts


class FakeBridge:
    version = "9.9"
    started = 0.0
    mqtt_connected = True
    mqtt_disconnects: Mapping[str, int] = {"lost": 2}
    mqtt_unanswered = 0.0
    mqtt_keepalive = 10.0
    journal_error = None
    results_pending = 3
    loop_lag = 0.25

    def __init__(self, rows: list[ChargerRow]) -> None:
        self._rows = rows
        self.durations = Durations()
        self.durations.observe("set_phase", 0.3)
        self.durations.observe("set_phase", 70.0)

    def failing(self) -> list[str]:
        return []

    def names(self) -> Sequence[str]:
        return [r.name for r in self._rows]

    def row(self, name: str) -> ChargerRow | None:
        return next((r for r in self._rows if r.name == name), None)

    def rows(self) -> Iterable[ChargerRow]:
        return iter(self._rows)

    def states(self, name: str) -> Mapping[str, Any]:
        return {}

    def history(self, name: str, limit: int) -> list[CommandLine]:
        return []

    def command_outcomes(self) -> Mapping[tuple[str, str, str], int]:
        return {("garage", "set_phase", "applied"): 4, ("", "", "refused"): 1}

    def command_durations(self) -> DurationCounts:
        d = self.durations
        return DurationCounts(d.buckets, d.counts, d.sums)


ROW = ChargerRow(
    name="garage", online=True, offline_reason="", connection="cloud websocket (no frame for 5 s)",
    model="go-eCharger_V4", firmware="60.4", last_update=100.0, car_state=2,
    power_watts=11_040.0, currents=(16.0, 16.0, None), energy_total_kwh=1234.5,
    temperature=31.5, polls={"ok": 7, "failed": 1}, reconnects=2,
)  # fmt: skip


def samples(kind: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = exposition(take_snapshot(FakeBridge([ROW]), kind), kind).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_names_labels_and_base_units() -> None:
    got = samples("all")
    garage = (("charger", "garage"),)
    assert got[("goe2mqtt_build_info", (("version", "9.9"),))] == 1
    assert got[("goe2mqtt_mqtt_reconnects_total", (("cause", "lost"),))] == 2
    assert got[("goe2mqtt_journal_pending_results", ())] == 3
    assert got[("goe2mqtt_event_loop_lag_seconds", ())] == 0.25
    info = (("charger", "garage"), ("firmware", "60.4"), ("model", "go-eCharger_V4"),
            ("transport", "cloud_websocket"))  # fmt: skip
    assert got[("goe2mqtt_charger_info", info)] == 1
    assert got[("goe2mqtt_charger_power_watts", garage)] == 11_040.0
    assert got[("goe2mqtt_charger_energy_joules_total", garage)] == 1234.5 * 3_600_000
    assert got[("goe2mqtt_charger_current_amperes", (*garage, ("phase", "1")))] == 16.0
    assert ("goe2mqtt_charger_current_amperes", (*garage, ("phase", "3"))) not in got
    assert got[("goe2mqtt_charger_polls_total", (*garage, ("outcome", "failed")))] == 1
    assert got[("goe2mqtt_charger_reconnects_total", garage)] == 2
    assert got[("goe2mqtt_charger_car_state", garage)] == 2
    applied = (*garage, ("outcome", "applied"), ("service", "set_phase"))
    assert got[("goe2mqtt_commands_total", applied)] == 4
    bucket = (("le", "0.5"), ("service", "set_phase"))
    assert got[("goe2mqtt_command_duration_seconds_bucket", bucket)] == 1
    everything = (("le", "+Inf"), ("service", "set_phase"))
    assert got[("goe2mqtt_command_duration_seconds_bucket", everything)] == 2
    assert any(name == "process_resident_memory_bytes" for name, _ in got)


def test_health_and_none_leave_out_what_they_say() -> None:
    health = {name for name, _ in samples("health")}
    assert "goe2mqtt_charger_online" in health
    assert "goe2mqtt_charger_power_watts" not in health
    none = samples("none")
    assert not any(dict(labels).get("charger") for _, labels in none)
    assert (
        none[
            (
                "goe2mqtt_commands_total",
                (("charger", ""), ("outcome", "applied"), ("service", "set_phase")),
            )
        ]
        == 4
    )


def test_outcomes_and_causes_are_one_word() -> None:
    assert outcome_of({"ok": True}) == "applied"
    assert outcome_of({"ok": False, "error": "not confirmed"}) == "not_confirmed"
    assert outcome_of({"ok": False, "error": "outcome unknown: the bridge stopped"}) == "unknown"
    assert outcome_of({"ok": False, "error": "stale: sent 400 s ago"}) == "stale"
    assert outcome_of({"ok": False, "error": "charger offline: timeout"}) == "offline"
    assert outcome_of({"ok": False, "error": "phase must be ..."}) == "refused"
    assert outcome_of({"ok": False, "error": "HTTP 500", "applied": []}) == "failed"
    assert cause_word("lost: the connection ended under us") == "lost"
    assert cause_word("closed by the broker: it stopped") == "closed"
    assert cause_word("TLS: the handshake failed") == "tls"


def test_readiness_fails_once_the_broker_leaves_a_request_unanswered_half_a_keepalive() -> None:
    """A frozen broker keeps the TCP connection: only its silence tells, and the keep-alive
    would take up to twice its length to end the connection."""
    from goe2mqtt.web.probes import readiness

    look = FakeBridge([])
    look.mqtt_unanswered = 4.9
    assert readiness(look) == []  # type: ignore[arg-type]
    look.mqtt_unanswered = 6.2
    assert readiness(look) == ["the MQTT broker has not answered for 6 s"]  # type: ignore[arg-type]
    look.mqtt_connected = False
    assert readiness(look) == ["not connected to the MQTT broker"]  # type: ignore[arg-type]


def fleet(n: int, step: int) -> list[ChargerRow]:
    """N chargers unlike each other; step moves some of their values, as polls would."""
    hostile = ('a"b', "back\\slash", "new\nline", "carriage\rreturn", "ünï ⚡", "")
    return [
        ChargerRow(
            name=f"c{i}-{hostile[i % len(hostile)]}", online=i % 5 != 0, offline_reason="",
            connection=("polling", "cloud websocket (no frame)", "")[i % 3],
            model=None if i % 7 == 0 else f"go-e {hostile[i % 6]}", firmware="60.4",
            last_update=None if i % 11 == 0 else 4000.0 + i + step * (i % 2),
            car_state=None if i % 4 == 0 else 1 + (i + step) % 5,
            power_watts=None if i % 6 == 0 else float(i * (step % 3)),
            currents=(16.0, None if i % 2 else 15.5, float(step)),
            energy_total_kwh=None if i % 9 == 0 else i + 0.5 * step * (i % 3 == 0),
            temperature=None if i % 13 == 0 else 30.0 + i % 4,
            polls={"ok": 100 + step * (i % 2), **({"failed": i} if i % 3 == 0 else {})},
            reconnects=i % 4,
        )
        for i in range(n)
    ]  # fmt: skip


def parsed(body: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
        if not s.name.startswith("process_")  # its CPU moves between the two
    }


async def test_sliced_and_kept_text_has_the_samples_of_a_plain_render(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(metrics, "time", SimpleNamespace(time=lambda: 5000.0))  # one "now"
    monkeypatch.setattr(scrape, "HOLD", 0.0)  # the loop takes a turn after every STEP
    n = 2 * STEP + 37  # slices, the last one short
    for kind in ("all", "health", "none"):
        scraper = Scraper(kind)
        for step, rows in enumerate((fleet(n, 0), fleet(n, 1), fleet(n, 1), fleet(n - 50, 2))):
            bridge = FakeBridge(rows)  # step 2: nothing moved; step 3: chargers left
            body = await scraper.exposition(bridge)
            plain = exposition(take_snapshot(bridge, kind), kind)
            assert parsed(body) == parsed(plain), (kind, step)
            helps = [line for line in body.split(b"\n") if line.startswith(b"# HELP ")]
            assert len(helps) == len(set(helps)), (kind, step)  # each family's HELP once
            assert len(parsed(body)) > {"all": 8, "health": 4, "none": 0}[kind] * len(rows)


async def test_a_scrape_that_comes_while_one_is_made_gets_that_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scrape, "HOLD", 0.0)  # a turn after every STEP: the second comes in
    bridge = FakeBridge(fleet(3 * STEP, 0))
    reads = 0
    rows = bridge.rows

    def counted() -> Iterable[ChargerRow]:
        nonlocal reads
        reads += 1
        return rows()

    monkeypatch.setattr(bridge, "rows", counted)
    scraper = Scraper("all")
    first, second = await asyncio.gather(scraper.exposition(bridge), scraper.exposition(bridge))
    assert first is second
    assert reads == 1
    assert await scraper.exposition(bridge) is not first  # the next one is made anew
    assert reads == 2
