"""The site's commands, and which charger commands a managing site refuses."""

from __future__ import annotations

import pytest

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
