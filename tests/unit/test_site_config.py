"""The sites: section: good sites load, bad ones stop start-up naming the key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from goe2mqtt.config.loading import load_settings
from goe2mqtt.config.problems import ConfigError
from goe2mqtt.config.schema import field_names
from goe2mqtt.config.settings import parse_settings
from goe2mqtt.config.site import SiteChargerSettings, SiteSettings

ROOT = Path(__file__).resolve().parents[2]


def config(*sites: dict[str, Any]) -> dict[str, Any]:
    return {
        "mqtt": {"host": "127.0.0.1"},
        "chargers": [
            {"name": "garage", "host": "192.168.1.20"},
            {"name": "carport", "host": "192.168.1.21"},
        ],
        "sites": list(sites),
    }


def site(**over: Any) -> dict[str, Any]:
    return {
        "name": "house",
        "fuse": 25,
        "meter_topic": "home/meter",
        "chargers": [
            {"name": "garage", "priority": 1, "min_current": 6, "max_current": 16},
            {"name": "carport", "priority": 2},
        ],
        **over,
    }


def test_the_issues_example_loads_with_its_defaults() -> None:
    settings = parse_settings(config(site(import_limit=11000, meter_timeout=30)))
    house = settings.sites[0]
    assert (house.name, house.fuse, house.import_limit) == ("house", 25, 11000)
    assert (house.interval, house.mode, house.fallback_current) == (5, "fuse", 6)
    assert (house.resume_after, house.ramp_up) == (60, 2)
    garage, carport = house.chargers
    assert (garage.priority, garage.min_current, garage.max_current) == (1, 6, 16)
    assert (carport.priority, carport.min_current, carport.max_current) == (2, 6, 32)
    assert parse_settings(config()).sites == ()


def test_mode_off_unquoted_in_the_file_is_off(tmp_path: Path) -> None:
    """The README: "edit the file to `mode: off`: the next start runs off". YAML reads an
    unquoted off as false, and start-up stopped: "sites[0].mode: Input should be 'fuse',
    'pv' or 'off'" - about the very value the user had written."""
    path = tmp_path / "config.yaml"
    path.write_text(
        "mqtt: {host: 127.0.0.1}\n"
        "chargers: [{name: garage, host: 192.168.1.20}]\n"
        "sites:\n"
        "  - name: house\n"
        "    fuse: 25\n"
        "    meter_topic: home/meter\n"
        "    mode: off\n"
        "    chargers: [{name: garage}]\n"
    )
    assert load_settings(path).sites[0].mode == "off"
    with pytest.raises(ConfigError, match=r"sites\[0\]\.mode: Input should be"):
        parse_settings(config(site(mode=True)))  # `mode: on` is no mode


@pytest.mark.parametrize(
    ("sites", "message"),
    [
        (
            [site(chargers=[{"name": "garage"}, {"name": "shed"}])],
            "sites[0].chargers[1].name: unknown charger 'shed' (not in chargers:)",
        ),
        (
            [site(chargers=[{"name": "garage"}]),
             site(name="barn", chargers=[{"name": "carport"}, {"name": "garage"}])],
            "sites[1].chargers[1].name: charger 'garage' is already in site 'house'",
        ),
        (
            [site(fuse=10, chargers=[{"name": "garage", "min_current": 12}])],
            "sites[0].fuse: 10 A is below charger garage's min_current 12 A",
        ),
        ([site(fuse=None)], "sites[0].fuse: required unless import_limit is set"),
        (
            # With the meter silent, two chargers at 6 A are 12 A: above a 10 A fuse alone.
            [site(fuse=10, chargers=[{"name": "garage"}, {"name": "carport"}])],
            "sites[0].fallback_current: 2 chargers at 6 A are 12 A, above the fuse of 10 A",
        ),
        ([site(fallback_current=3)], "sites[0].fallback_current: 3 A: 0 (pause) or at least 6"),
        (
            [site(chargers=[{"name": "garage", "min_current": 5}])],
            "sites[0].chargers[0].min_current: Input should be greater than or equal to 6",
        ),
        (
            [site(chargers=[{"name": "garage", "min_current": 16, "max_current": 10}])],
            "sites[0].chargers[0].min_current: 16 A is above max_current 10 A",
        ),
        ([site(mode="eco")], "sites[0].mode: Input should be 'fuse', 'pv' or 'off'"),
        ([site(), site()], "sites[1].name: duplicate site name 'house'"),
        ([site(meter_topic="home/#")], "sites[0].meter_topic: "),
        ([site(intervall=5)], "sites[0].intervall: unknown key; did you mean interval?"),
        # Under the bridge's own base topic: the site would read the bridge's publishes.
        (
            [site(meter_topic="goe2mqtt/garage/nrg")],
            "sites[0].meter_topic: 'goe2mqtt/garage/nrg' lies under the bridge's own"
            " base_topic 'goe2mqtt'",
        ),
        ([site(meter_topic="goe2mqtt")], "sites[0].meter_topic: 'goe2mqtt' lies under"),
    ],
)  # fmt: skip
def test_a_bad_site_names_its_key(sites: list[dict[str, Any]], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(config(*sites))
    assert any(p.startswith(message) for p in caught.value.problems), caught.value.problems


def test_a_meter_topic_beside_the_base_topic_is_taken() -> None:
    """Only the base topic's own tree is refused: goe2mqtt-meter is another topic."""
    settings = parse_settings(config(site(meter_topic="goe2mqtt-meter/power")))
    assert settings.sites[0].meter_topic == "goe2mqtt-meter/power"
    raw = config(site(meter_topic="goe2mqtt/meter"))
    raw["mqtt"]["base_topic"] = "bridge"
    assert parse_settings(raw).sites[0].meter_topic == "goe2mqtt/meter"


def test_an_import_limit_alone_is_a_limit() -> None:
    settings = parse_settings(config(site(fuse=None, import_limit=7000)))
    assert settings.sites[0].fuse is None
    assert settings.sites[0].import_limit == 7000


def test_a_site_is_refused_with_shards() -> None:
    raw = config(site())
    raw["shard"] = {"index": 0, "count": 2}
    with pytest.raises(ConfigError, match=r"sites: a site needs every charger"):
        parse_settings(raw)


def test_the_example_documents_every_site_key() -> None:
    text = (ROOT / "config.example.yaml").read_text()
    for model in (SiteSettings, SiteChargerSettings):
        for key in field_names(model):
            assert f"{key}:" in text, f"config.example.yaml does not document {key}"


@pytest.mark.parametrize("name", ["site", "site_house", "site-house", "site-", "site__house"])
def test_charger_names_of_the_sites_topics_and_ids_are_reserved(name: str) -> None:
    """site_house + its mode entity would be the site's own Home Assistant object id;
    so would site-house's: Home Assistant makes one id of - and _ (and of runs of them)."""
    raw = config(site(chargers=[{"name": "garage"}]))
    raw["chargers"].append({"name": name, "host": "192.168.1.22"})
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw)
    assert any(
        p.startswith("chargers[2].name: 'site' and names beginning 'site_' are reserved")
        and p.endswith(": rename the charger")
        for p in caught.value.problems
    ), caught.value.problems
    if name not in ("site", "site_house"):
        # The name the user wrote begins no 'site_': the problem says why it counts.
        assert any(
            "; Home Assistant reads" in p and f"'{name}' as site" in p
            for p in caught.value.problems
        ), caught.value.problems
    raw["sites"] = []
    assert parse_settings(raw).chargers[2].name == name  # without sites, any name


def test_a_fallback_that_fits_or_pauses_is_taken() -> None:
    two = [{"name": "garage"}, {"name": "carport"}]
    assert parse_settings(config(site(fuse=12, chargers=two))).sites[0].fuse == 12
    paused = parse_settings(config(site(fuse=10, fallback_current=0, chargers=two)))
    assert paused.sites[0].fallback_current == 0
