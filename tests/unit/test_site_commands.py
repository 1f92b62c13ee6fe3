"""The site's commands, and which charger commands a managing site refuses."""

from __future__ import annotations

import pytest

from goe2mqtt.bridge.site_runner import force_effect
from goe2mqtt.bridge.sites import Sites
from goe2mqtt.config.site import SiteChargerSettings, SiteSettings
from goe2mqtt.mqtt.session import InboundMessage
from goe2mqtt.site.commands import SiteCommandError, parse_site_command, sets_current


def test_the_three_site_commands() -> None:
    command = parse_site_command("set_mode", b'{"mode": "pv", "id": "a1"}')
    assert (command.arguments, command.request_id) == ({"mode": "pv"}, "a1")
    assert parse_site_command("set_fuse", b'{"fuse": 20.5}').arguments == {"fuse": 20.5}
    command = parse_site_command("set_priority", b'{"charger": "garage", "priority": 2.0}')
    assert command.arguments == {"charger": "garage", "priority": 2}


@pytest.mark.parametrize(
    ("service", "payload", "reason"),
    [
        ("set_speed", b"{}", "unknown site service 'set_speed'"),
        ("set_mode", b'"pv"', "payload must be a JSON object"),
        ("set_mode", b'{"mode": 1}', "mode must be fuse, pv or off"),
        ("set_mode", b'{"mode": "pv", "extra": 1}', "set_mode takes {mode}"),
        ("set_fuse", b'{"fuse": NaN}', "fuse must be a number"),
        ("set_fuse", b'{"fuse": "20"}', "fuse must be a number"),
        ("set_priority", b'{"charger": "garage", "priority": 1.5}', "whole number"),
        ("set_priority", b'{"charger": 3, "priority": 1}', "charger must be"),
        ("set_fuse", b'{"fuse": 20, "id": 1e400}', "id must be a string or a number"),
        # The rule of a charger command's id: a lone surrogate is no UTF-8, true no id.
        ("set_mode", b'{"mode": "pv", "id": "\\ud800"}', "id must be a string or a number"),
        ("set_mode", b'{"mode": "pv", "id": true}', "id must be a string or a number"),
        ("set_fuse", b"[" * 5000, "too large"),
    ],
)
def test_bad_site_commands_say_why(service: str, payload: bytes, reason: str) -> None:
    with pytest.raises(SiteCommandError, match=reason.replace("{", r"\{").replace("}", r"\}")):
        parse_site_command(service, payload)


@pytest.mark.parametrize(
    ("service", "payload", "refused"),
    [
        ("change_charging_power", b"10", True),
        ("temporary_current_limit", b"10", True),
        ("set", b'{"amp": 10}', True),
        ("set", b'{"tcl": null}', True),
        ("set", b'{"lbr": 10}', False),
        ("start_charging", b'{"charging_power": 10}', True),
        ("start_charging", b"", False),
        # A one-parameter service takes its bare value (README: start_charging 10).
        ("start_charging", b"16", True),
        ("start_charging", b'"16"', True),
        ("start_charging", b"null", False),
        ("start_charging", b"{}", False),
        ("start_charging", b'{"charging_power": null}', False),
        ("stop_charging", b"", False),
        ("max_current", b"16", False),  # the charger's ceiling: the site reads it
    ],
)
def test_which_charger_commands_set_the_current(service: str, payload: bytes,
                                                refused: bool) -> None:  # fmt: skip
    assert sets_current(service, payload) is refused


def test_only_the_sites_own_writes_pass_the_guard() -> None:
    house = SiteSettings(name="house", fuse=25, meter_topic="m",
                         chargers=(SiteChargerSettings(name="site"),))  # fmt: skip
    sites = Sites([house], base="goe")
    own = InboundMessage("goe/site/house/write/set", b'{"tcl": 10}', retain=False)
    assert sites.refusal("site", "set", own) is None
    # A charger named "site": its users' commands start with goe/site/ too.
    for topic in ("goe/site/cmd/set", "goe/site/house/write"):
        user = InboundMessage(topic, b'{"tcl": 10}', retain=False)
        assert "site house manages site's current" in (sites.refusal("site", "set", user) or "")
    runner = sites.runners["house"]
    runner.controller.set_mode("off")
    user = InboundMessage("goe/site/cmd/set", b'{"tcl": 10}', retain=False)
    assert sites.refusal("site", "set", user) is None


@pytest.mark.parametrize(
    ("service", "payload", "car", "effect"),
    [
        ("start_charging", b"", 4, "start"),
        ("stop_charging", b"", 4, "stop"),
        ("set", b'{"frc": 2}', 4, "start"),
        ("set", b'{"frc": 0}', 4, "start"),  # neutral: the charger's own logic may start
        ("set", b'{"frc": 1}', 4, "stop"),
        ("set", b'{"lbr": 10}', 4, None),
        ("force_state", b"on", 4, "start"),
        ("force_state", b"neutral", 4, "start"),
        ("force_state", b"off", 4, "stop"),
        ("force_state", b"1", 4, "stop"),
        ("force_state", b'{"value": "off", "id": 3}', 4, "stop"),
        ("wallbox_control", b"", 4, "start"),  # complete: the button starts
        ("wallbox_control", b"", 3, None),  # waiting for a card: the button authorises
        ("set", b"not json {", 4, None),  # the command path refuses it for what it is
        ("max_current", b"16", 4, None),
    ],
)
def test_what_a_charger_command_does_to_the_force_state(
    service: str, payload: bytes, car: int, effect: str | None
) -> None:
    assert force_effect(service, payload, car) == effect


def test_a_charger_the_site_paused_is_not_started_by_a_user_and_a_stop_is_their_wish() -> None:
    """A start that the site would undo within seconds is refused with the reason; a
    stop makes the site forget its pause, so that its resume does not start it."""
    from goe2mqtt.site.seen import ChargerSeen

    house = SiteSettings(name="house", fuse=25, meter_topic="m",
                         chargers=(SiteChargerSettings(name="garage"),))  # fmt: skip
    sites = Sites([house], base="goe")
    controller = sites.runners["house"].controller
    controller.see("garage", ChargerSeen(online=True, car=4, frc=1))

    def user(service: str, payload: bytes = b"") -> str | None:
        message = InboundMessage(f"goe/garage/cmd/{service}", payload, retain=False)
        return sites.refusal("garage", service, message)

    assert user("start_charging") is None  # not paused: it passes
    assert controller.restore_paused("garage", 0)
    for service, payload in (("start_charging", b""), ("set", b'{"frc": 2}'),
                             ("force_state", b"neutral"), ("wallbox_control", b"")):  # fmt: skip
        refused = user(service, payload)
        assert refused is not None
        assert refused.startswith("site house has paused garage (paused before the restart;")
        assert "cmd/set_mode off" in refused
    assert user("set", b'{"lbr": 10}') is None  # anything else passes
    assert controller.paused() == {"garage": 0}
    assert user("stop_charging") is None
    assert controller.paused() == {}  # the user's stop: not resumed by the site
    assert controller.managed["garage"].why == "stopped by a user's command"
    assert user("start_charging") is None  # and now theirs to start
