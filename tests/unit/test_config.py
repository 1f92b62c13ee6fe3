"""Configuration: good files load, bad ones stop start-up naming the key (no process)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from goe2mqtt.bridge.startup import session_options
from goe2mqtt.config.http import HttpSettings
from goe2mqtt.config.loading import load_settings
from goe2mqtt.config.problems import ConfigError
from goe2mqtt.config.schema import field_names
from goe2mqtt.config.settings import (
    ShardSettings,
    TlsSettings,
    parse_settings,
)
from goe2mqtt.mqtt.pace import BULK_RATE, MAX_RATE
from goe2mqtt.mqtt.topics import Topics

ROOT = Path(__file__).resolve().parents[2]
SECRET = "tok-DO-NOT-LEAK-8842"


def base(**charger: Any) -> dict[str, Any]:
    return {
        "mqtt": {"host": "127.0.0.1"},
        "chargers": [{"name": "garage", "serial": "012345", "token": SECRET, **charger}],
    }


def test_example_config_is_valid_once_edited_and_documents_every_key(tmp_path: Path) -> None:
    # Unedited, it cannot work: check-config must say so rather than OK.
    placeholder = r"^chargers\[0\]\.token: still the example's placeholder"
    with pytest.raises(ConfigError, match=placeholder):
        load_settings(ROOT / "config.example.yaml")
    text = (ROOT / "config.example.yaml").read_text()
    edited = tmp_path / "config.yaml"
    edited.write_text(text.replace('"replace-me"', '"a1b2c3d4e5"'))
    settings = load_settings(edited)
    assert settings.chargers[0].serial == "012345"
    models = (type(settings), type(settings.mqtt), TlsSettings, ShardSettings, HttpSettings)
    for model in (*models, type(settings.chargers[0])):
        for key in field_names(model):
            assert f"{key}:" in text, f"config.example.yaml does not document {key}"


def test_the_examples_values_are_the_defaults_as_its_header_says(tmp_path: Path) -> None:
    """config.example.yaml: 'Besides mqtt.host and a charger's name, serial and token, a
    key shown with a value holds its default'."""
    edited = tmp_path / "config.yaml"
    text = (ROOT / "config.example.yaml").read_text()
    edited.write_text(text.replace('"replace-me"', '"a1b2c3d4e5"'))
    example = load_settings(edited)
    given = yaml.safe_load(text)
    minimal = parse_settings(base())
    shown = {k for k in given["mqtt"] if k != "host"}
    assert shown >= {"port", "client_id", "keepalive", "bulk_rate"}
    for key in shown:
        assert getattr(example.mqtt, key) == getattr(minimal.mqtt, key), key
    shown = {k for k in given["chargers"][0] if k not in ("name", "serial", "token")}
    assert shown >= {"scan_interval", "timeout"}
    for key in shown:
        assert getattr(example.chargers[0], key) == getattr(minimal.chargers[0], key), key
    for key in set(given) - {"mqtt", "chargers"}:
        assert getattr(example, key) == getattr(minimal, key), key


def test_defaults() -> None:
    settings = parse_settings(base())
    assert settings.mqtt.port == 1883
    assert settings.mqtt.base_topic == "goe2mqtt"
    assert settings.mqtt.discovery_prefix == "homeassistant"
    assert settings.chargers[0].scan_interval == 10
    assert settings.chargers[0].base_url == "https://012345.api.v3.go-e.io"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"mqtt": {}, "chargers": base()["chargers"]}, "mqtt.host: required key is missing"),
        ({**base(), "extra": 1}, "extra: unknown key"),
        ({"mqtt": {"host": "h", "prot": 1}, "chargers": base()["chargers"]}, "mqtt.prot: unknown"),
        ({"mqtt": {"host": "h", "port": "1883"}, "chargers": base()["chargers"]}, "mqtt.port:"),
        ({"mqtt": {"host": "h", "port": 70000}, "chargers": base()["chargers"]}, "mqtt.port:"),
        (
            {"mqtt": {"host": "h", "base_topic": "a/+"}, "chargers": base()["chargers"]},
            "mqtt.base_topic: must be an MQTT topic without wildcards",
        ),
        ({"mqtt": {"host": "h"}, "chargers": []}, "chargers: list at least one charger"),
        ({"mqtt": {"host": "h"}}, "chargers: required key is missing"),
        (base(serial=12345), "chargers[0].serial: must be the 6-digit serial as a quoted string"),
        (base(serial="12345"), "chargers[0].serial: must be the 6-digit serial"),
        (base(name="My Garage"), "chargers[0].name: use only a-z, 0-9, _ and -"),
        # The patterns end at the end of the text, not before a final newline.
        (base(name="garage\n"), "chargers[0].name: use only a-z, 0-9, _ and -"),
        (base(serial="012345\n"), "chargers[0].serial: must be the 6-digit serial"),
        (base(host="192.168.1.20\n", token=None), "chargers[0].host: must be a host name"),
        (base(tariff={"currency": "EUR\n"}), "chargers[0].tariff.currency: must be a 3-letter"),
        (base(name="bridge"), "chargers[0].name: 'bridge' is reserved"),
        (base(scan_interval=0), "chargers[0].scan_interval:"),
        (base(scan_interval="10"), "chargers[0].scan_interval:"),
        (base(api_url="ftp://x"), "chargers[0].api_url:"),
        (base(token=None), "chargers[0].token: required"),
        (base(token=None, token_file="/nonexistent/token"), "chargers[0].token_file: cannot read"),
        (base(token_file="/etc/hostname"), "chargers[0].token_file: give either token or"),
        (base(colour="red"), "chargers[0].colour: unknown key"),
        (base(host="192.168.1.20"), "chargers[0].token: the local API (host) takes no token"),
        (base(serial=None), "chargers[0].serial: required for the cloud API"),
        (
            base(host="http://192.168.1.20", token=None),
            "chargers[0].host: must be a host name or IP address",
        ),
        (
            {
                "mqtt": {"host": "h"},
                "chargers": [base()["chargers"][0], {**base()["chargers"][0], "serial": "067890"}],
            },
            "chargers[1].name: duplicate name 'garage'",
        ),
        (
            {
                "mqtt": {"host": "h"},
                "chargers": [base()["chargers"][0], {**base()["chargers"][0], "name": "other"}],
            },
            "chargers[1].serial: duplicate serial 012345",
        ),
        (
            {"mqtt": {"host": "${GOE2MQTT_TEST_UNSET}"}, "chargers": base()["chargers"]},
            "mqtt.host: environment variable GOE2MQTT_TEST_UNSET is not set",
        ),
        ([1, 2], "must be a YAML mapping"),
    ],
)
def test_bad_config_names_the_key(raw: Any, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw)
    assert message in str(caught.value)
    assert SECRET not in str(caught.value)
    assert "\n" not in str(caught.value)


def mqtt_host(host: Any) -> dict[str, Any]:
    return {"mqtt": {"host": host}, "chargers": base()["chargers"]}


@pytest.mark.parametrize(
    ("host", "message"),
    [
        # The broker's port is mqtt.port: the charger's host hint (":port") misled here.
        (None, "mqtt.host: must be the broker's host name or IP address"),
        ("mqtt://broker.lan:1883", "mqtt.host: must be the broker's host name or IP address, not"),
        ("http://192.168.1.10", "mqtt.host: must be the broker's host name or IP address, not"),
        ("broker.lan:1883", "mqtt.host: must be the broker's host name or IP address alone"),
        ("192.168.1.10:", "mqtt.host: must be the broker's host name or IP address alone"),
        ("[::1]", "mqtt.host: must be the broker's host name or IP address alone"),
        ("[::1]:1883", "mqtt.host: must be the broker's host name or IP address alone"),
    ],
)
def test_a_broker_host_with_a_scheme_or_a_port_is_refused(host: Any, message: str) -> None:
    """check-config said OK to these and the bridge then failed DNS at every retry
    (`127.0.0.1:1883:1883: DNS: the host name does not resolve`)."""
    with pytest.raises(ConfigError) as caught:
        parse_settings(mqtt_host(host))
    [problem] = caught.value.problems
    assert problem.startswith(message), problem
    assert ":port" not in str(caught.value)


@pytest.mark.parametrize(
    "host", ["broker.lan", "127.0.0.1", "::1", "fe80::1%eth0", "my_mosquitto", "localhost"]
)
def test_a_broker_host_name_or_address_is_taken(host: str) -> None:
    assert parse_settings(mqtt_host(host)).mqtt.host == host


def test_an_idle_interval_below_the_scan_interval_is_a_warning() -> None:
    """idle_scan_interval: 5 with scan_interval: 10 polled every 10 s, in silence."""
    settings = parse_settings(base(scan_interval=10, idle_scan_interval=5))
    assert settings.chargers[0].idle_interval == 10
    assert settings.warnings == (
        "charger garage: idle_scan_interval 5 s is below scan_interval 10 s: without a car"
        " it is polled every 10 s too",
    )
    assert parse_settings(base(scan_interval=10, idle_scan_interval=30)).warnings == ()


def test_every_duplicate_charger_is_named_at_once() -> None:
    """check-config "lists every problem at once": a fleet's list copied and edited,
    with a serial and a host given twice, told only the first of them."""
    first = base()["chargers"][0]
    raw = {"mqtt": {"host": "h"}, "chargers": [
        first, {**first, "name": "other"},
        {"name": "c", "host": "192.168.1.20"}, {"name": "d", "host": "192.168.1.20"},
        {**first, "name": "c", "serial": "067890"},
    ]}  # fmt: skip
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw)
    assert caught.value.problems == (
        "chargers[1].serial: duplicate serial 012345",
        "chargers[3].host: duplicate host 192.168.1.20",
        "chargers[4].name: duplicate name 'c'",
    )


def test_local_api_chargers() -> None:
    raw = base(host="192.168.1.20", token=None, serial=None)
    raw["chargers"].append({"name": "carport", "host": "[fd00::7]:8080", "serial": "067890"})
    garage, carport = parse_settings(raw).chargers
    assert (garage.api, garage.base_url, garage.serial) == (
        "local",
        "http://192.168.1.20",
        None,
    )
    assert carport.base_url == "http://[fd00::7]:8080"
    raw["chargers"][1]["host"] = "192.168.1.20"
    with pytest.raises(ConfigError, match=r"^chargers\[1\]\.host: duplicate host"):
        parse_settings(raw)


def test_secrets_from_environment_and_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOE_TOKEN", "from-env")
    token_file = tmp_path / "token"
    token_file.write_text("from-file\n")
    password_file = tmp_path / "password"
    password_file.write_text("pw-file\n")
    token_file.chmod(0o600)
    password_file.chmod(0o640)  # a group may share it
    settings = parse_settings(
        {
            "mqtt": {"host": "h", "username": "u", "password_file": str(password_file)},
            "chargers": [
                {"name": "a", "serial": "000001", "token": "${GOE_TOKEN}"},
                {"name": "b", "serial": "000002", "token_file": str(token_file)},
            ],
        }
    )
    assert settings.chargers[0].token is not None
    assert settings.chargers[0].token.get_secret_value() == "from-env"
    assert settings.chargers[1].token is not None
    assert settings.chargers[1].token.get_secret_value() == "from-file"
    assert settings.mqtt.password is not None
    assert settings.mqtt.password.get_secret_value() == "pw-file"
    assert sorted(settings.secrets()) == ["from-env", "from-file", "pw-file"]
    assert "from-env" not in repr(settings)


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o620, 0o666])
def test_secret_files_others_can_touch_stop_start_up(tmp_path: Path, mode: int) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(SECRET)
    token_file.chmod(mode)
    with pytest.raises(ConfigError) as caught:
        parse_settings(base(token=None, token_file=str(token_file)))
    message = str(caught.value)
    assert message.startswith("chargers[0].token_file: ")
    assert "allow_insecure_secrets: true" in message
    assert SECRET not in message


def test_insecure_secret_files_only_warn_when_allowed(tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text("pw-7c1e9a4b")
    password_file.chmod(0o644)
    raw = base()
    raw["mqtt"]["password_file"] = str(password_file)
    raw["allow_insecure_secrets"] = True
    settings = parse_settings(raw)
    assert settings.mqtt.password is not None
    assert len(settings.warnings) == 1
    assert settings.warnings[0].startswith("mqtt.password_file: ")
    assert "pw-7c1e9a4b" not in settings.warnings[0]


def test_an_insecure_charger_token_file_warning_names_its_charger(tmp_path: Path) -> None:
    # Every other config message names the full key; this warning said "token_file:".
    token_file = tmp_path / "token"
    token_file.write_text(SECRET)
    token_file.chmod(0o644)
    raw = base(token=None, token_file=str(token_file))
    raw["allow_insecure_secrets"] = True
    (warning,) = parse_settings(raw).warnings
    assert warning.startswith("chargers[0].token_file: "), warning
    assert SECRET not in warning


def test_protocol_and_command_age() -> None:
    raw = base()
    assert parse_settings(raw).mqtt.protocol == "5"
    assert parse_settings(raw).mqtt.max_command_age == 300
    raw["mqtt"].update(protocol="3.1.1", max_command_age=60)
    assert parse_settings(raw).mqtt.protocol == "3.1.1"
    raw["mqtt"]["protocol"] = 4
    with pytest.raises(ConfigError, match=r"^mqtt\.protocol: "):
        parse_settings(raw)
    raw["mqtt"].update(protocol=5, max_command_age=0)
    with pytest.raises(ConfigError, match=r"^mqtt\.max_command_age: "):
        parse_settings(raw)


def test_bulk_rate_reaches_the_session_and_a_negative_one_names_the_key() -> None:
    raw = base()
    settings = parse_settings(raw)
    assert settings.mqtt.bulk_rate == BULK_RATE  # the session's own default
    assert session_options(settings, Topics("goe2mqtt")).bulk_rate == BULK_RATE
    raw["mqtt"]["bulk_rate"] = 0  # no limit
    assert session_options(parse_settings(raw), Topics("goe2mqtt")).bulk_rate == 0.0
    raw["mqtt"]["bulk_rate"] = -1
    with pytest.raises(ConfigError, match=r"^mqtt\.bulk_rate: "):
        parse_settings(raw)
    raw["mqtt"]["bulk_rate"] = 0.5  # a fleet's configs would take days
    with pytest.raises(ConfigError, match=r"^mqtt\.bulk_rate: must be 0 \(no limit\) or at"):
        parse_settings(raw)
    raw["mqtt"]["bulk_rate"] = 10
    assert parse_settings(raw).mqtt.bulk_rate == 10.0
    # The subscribers' pace is the fleet's: every shard re-sends at a birth, together.
    raw["mqtt"]["bulk_rate"] = 2000
    raw["shard"] = {"index": 1, "count": 4}
    assert session_options(parse_settings(raw), Topics("goe2mqtt")).bulk_rate == 500.0


def test_max_rate_reaches_the_session_divided_among_shards() -> None:
    raw = base()
    settings = parse_settings(raw)
    assert settings.mqtt.max_rate == MAX_RATE  # the session's own default
    assert session_options(settings, Topics("goe2mqtt")).max_rate == MAX_RATE
    raw["mqtt"]["max_rate"] = 0  # no limit
    assert session_options(parse_settings(raw), Topics("goe2mqtt")).max_rate == 0.0
    raw["mqtt"]["max_rate"] = 5
    with pytest.raises(ConfigError, match=r"^mqtt\.max_rate: must be 0 \(no limit\) or at"):
        parse_settings(raw)
    raw["mqtt"]["max_rate"] = 8000
    raw["shard"] = {"index": 1, "count": 4}  # the subscribers read the whole fleet
    assert session_options(parse_settings(raw), Topics("goe2mqtt")).max_rate == 2000.0


NOT_TEXT = "must be a number, not text (no quotes, units or commas: 0.30, 2000;"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('bulk_rate: "fast"', f"mqtt.bulk_rate: {NOT_TEXT}"),
        ('bulk_rate: "2000"', f"mqtt.bulk_rate: {NOT_TEXT}"),
        ("bulk_rate: 2,000", f"mqtt.bulk_rate: {NOT_TEXT}"),
        # YAML 1.1 wants a dot and a signed exponent: this is text to it, not 1500.
        ("bulk_rate: 1.5e3", f"mqtt.bulk_rate: {NOT_TEXT} YAML reads 1.5e3 as text"),
        ('port: "1883"', "mqtt.port: must be a whole number, not text (no quotes"),
        # A price with a decimal comma, as written in much of Europe.
        ("tariff:\n  price_per_kwh: 0,30", f"tariff.price_per_kwh: {NOT_TEXT}"),
        ('discovery: "true"', "mqtt.discovery: must be true or false, not text (no quotes)"),
    ],
)
def test_text_given_for_a_number_says_it_is_text(tmp_path: Path, line: str, message: str) -> None:
    """'Input should be a valid number' for 1.5e3 or a quoted "2000" named no reason:
    both look like numbers to whoever wrote them."""
    path = tmp_path / "config.yaml"
    text = yaml.safe_dump(base())
    if line.startswith("tariff:"):
        path.write_text(f"{text}{line}\n")
    else:
        path.write_text(text.replace("mqtt:\n", f"mqtt:\n  {line}\n", 1))
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    [problem] = caught.value.problems
    assert problem.startswith(message), problem


def test_a_number_given_as_1_5e_plus_3_is_taken_and_not_text_is_said_as_before() -> None:
    raw = base()
    raw["mqtt"]["bulk_rate"] = yaml.safe_load("1.5e+3")
    assert parse_settings(raw).mqtt.bulk_rate == 1500.0
    for value, message in ((None, "a valid number"), (True, "a valid number"), (-5, "greater")):
        raw["mqtt"]["bulk_rate"] = value
        with pytest.raises(ConfigError, match=f"^mqtt.bulk_rate: Input should be {message}"):
            parse_settings(raw)


def test_environment_references_take_the_type_of_their_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {"PORT": "8883", "KEEP": "30", "DISCOVERY": "false", "SERIAL": "012345",
                        "SCAN": "2.5"}.items():  # fmt: skip
        monkeypatch.setenv(f"GOE_T_{name}", value)
    raw = base()
    raw["mqtt"].update(port="${GOE_T_PORT}", keepalive="${GOE_T_KEEP}",
                       discovery="${GOE_T_DISCOVERY}")  # fmt: skip
    raw["chargers"][0].update(serial="${GOE_T_SERIAL}", scan_interval="${GOE_T_SCAN}")
    settings = parse_settings(raw)
    assert (settings.mqtt.port, settings.mqtt.keepalive) == (8883, 30)
    assert settings.mqtt.discovery is False
    assert settings.chargers[0].serial == "012345"
    assert settings.chargers[0].scan_interval == 2.5
    monkeypatch.setenv("GOE_T_PORT", "eighty")
    with pytest.raises(ConfigError, match=r"^mqtt\.port: "):
        parse_settings(raw)


def test_environment_variables_override_and_extend_the_file(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(base()))
    settings = load_settings(
        config,
        {
            "GOE2MQTT_MQTT__HOST": "broker.lan",
            "GOE2MQTT_MQTT__PORT": "8883",
            "GOE2MQTT_MQTT__DISCOVERY": "false",
            "GOE2MQTT_CHARGERS__0__SCAN_INTERVAL": "30",
            "GOE2MQTT_CHARGERS__1__NAME": "carport",
            "GOE2MQTT_CHARGERS__1__HOST": "192.168.1.21",
            "GOE2MQTT_CONFIG": str(config),  # steers the program, not a setting
            "HOME": "/root",
        },
    )
    assert (settings.mqtt.host, settings.mqtt.port, settings.mqtt.discovery) == (
        "broker.lan",
        8883,
        False,
    )
    assert settings.chargers[0].scan_interval == 30
    assert settings.chargers[1].host == "192.168.1.21"


def test_environment_alone_is_enough(tmp_path: Path) -> None:
    settings = load_settings(
        tmp_path / "missing.yaml",
        {
            "GOE2MQTT_MQTT__HOST": "127.0.0.1",
            "GOE2MQTT_CHARGERS__0__NAME": "garage",
            "GOE2MQTT_CHARGERS__0__SERIAL": '"012345"',
            "GOE2MQTT_CHARGERS__0__TOKEN": SECRET,
        },
    )
    assert settings.chargers[0].serial == "012345"
    unquoted = load_settings(
        tmp_path / "missing.yaml",
        {
            "GOE2MQTT_MQTT__HOST": "127.0.0.1",
            "GOE2MQTT_MQTT__PORT": "1884",
            "GOE2MQTT_CHARGERS__0__NAME": "garage",
            "GOE2MQTT_CHARGERS__0__SERIAL": "012345",  # a serial stays text, zero and all
            "GOE2MQTT_CHARGERS__0__TOKEN": SECRET,
        },
    )
    assert unquoted.chargers[0].serial == "012345"
    assert unquoted.mqtt.port == 1884
    with pytest.raises(ConfigError, match=r"^GOE2MQTT_CHARGERS__5__NAME: chargers\.5\.name "):
        load_settings(tmp_path / "missing.yaml", {"GOE2MQTT_CHARGERS__5__NAME": "x"})
    with pytest.raises(ConfigError, match=r"^cannot read config file"):
        load_settings(tmp_path / "missing.yaml", {})


def test_idle_interval_and_shards() -> None:
    raw = base()
    assert parse_settings(raw).chargers[0].idle_interval == 30
    raw["chargers"][0]["idle_scan_interval"] = 5  # never faster than scan_interval
    assert parse_settings(raw).chargers[0].idle_interval == 10
    raw["chargers"] = [{"name": f"c{n}", "serial": f"{n:06d}", "token": SECRET} for n in range(200)]
    owners = []
    for index in range(3):
        raw["shard"] = {"index": index, "count": 3}
        owners.append({c.name for c in parse_settings(raw).owned_chargers()})
    assert set().union(*owners) == {f"c{n}" for n in range(200)}
    assert sum(len(o) for o in owners) == 200  # disjoint
    assert all(40 < len(o) < 95 for o in owners)  # and roughly even
    raw["shard"] = {"index": 3, "count": 3}
    with pytest.raises(ConfigError, match=r"^shard\.index: 3 must be below count \(3\)"):
        parse_settings(raw)


def test_the_example_keeps_optional_keys_as_comments_not_live_nulls() -> None:
    text = (ROOT / "config.example.yaml").read_text()
    live_nulls = [
        line for line in text.splitlines()
        if not line.lstrip().startswith("#") and line.split("#")[0].rstrip().endswith(": null")
    ]  # fmt: skip
    assert live_nulls == []


@pytest.mark.parametrize(
    ("where", "allowed"),
    [
        ({"api_url": "https://012345.api.v3.go-e.io"}, False),  # the real cloud
        ({"api_url": "http://127.0.0.1:8080/012345"}, True),  # a simulator here
        ({"api_url": "http://localhost:8080/012345"}, True),
        ({"host": "192.168.1.20", "token": None}, False),  # a charger on the LAN
        ({"host": "127.0.0.1:8081", "token": None}, True),
    ],
)
def test_fast_polling_only_for_a_simulator_on_this_machine(
    where: dict[str, Any], allowed: bool
) -> None:
    raw = base(scan_interval=0.2, **where)
    if where.get("token", SECRET) is None:
        del raw["chargers"][0]["token"]
    if allowed:
        assert parse_settings(raw).chargers[0].scan_interval == 0.2
    else:
        with pytest.raises(ConfigError, match=r"scan_interval: at least 1 s"):
            parse_settings(raw)


def test_an_unknown_key_suggests_the_nearest_known_one() -> None:
    raw = base(scan_intervall=5)
    raw["mqtt"]["hots"] = "x"
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw)
    assert "chargers[0].scan_intervall: unknown key; did you mean scan_interval?" in (
        caught.value.problems
    )
    assert "mqtt.hots: unknown key; did you mean host?" in caught.value.problems


def test_a_bad_value_from_the_environment_names_its_variable(tmp_path: Path) -> None:
    environ = {
        "GOE2MQTT_MQTT__HOST": "127.0.0.1",
        "GOE2MQTT_CHARGERS__0__NAME": "garage",
        "GOE2MQTT_CHARGERS__0__HOST": "192.168.1.20",
        "GOE2MQTT_CHARGERS__0__SCAN_INTERVAL": "0.1",
    }
    with pytest.raises(ConfigError) as caught:
        load_settings(tmp_path / "missing.yaml", environ)
    (problem,) = caught.value.problems
    assert problem.startswith("chargers[0].scan_interval: at least 1 s")
    assert problem.endswith("(from GOE2MQTT_CHARGERS__0__SCAN_INTERVAL)")


@pytest.mark.parametrize(
    ("api_url", "refused"),
    [
        ("http://192.168.1.20/api", True),  # a proxy on the LAN: the token in clear text
        ("http://127.evil.example/api", True),  # a name, not the loopback address
        ("http://charger.lan", True),
        ("https://192.168.1.20/api", False),
        ("http://127.0.0.1:8080/012345", False),  # a simulator on this machine
        ("http://127.3.4.5:8080/012345", False),
        ("http://localhost:8080/012345", False),
        ("http://[::1]:8080/012345", False),
    ],
)
def test_a_token_over_plain_http_needs_allow_insecure(api_url: str, refused: bool) -> None:
    raw = base(api_url=api_url)
    if not refused:
        assert parse_settings(raw).warnings == ()
        return
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw)
    (message,) = caught.value.problems
    assert message.startswith(f"chargers[0].api_url: {api_url} is plain http: the token")
    assert "allow_insecure: true" in message
    assert SECRET not in message
    raw["chargers"][0]["allow_insecure"] = True
    settings = parse_settings(raw)
    assert len(settings.warnings) == 1
    assert "clear text" in settings.warnings[0]
    assert SECRET not in settings.warnings[0]


def test_the_examples_token_beside_a_host_says_to_remove_it() -> None:
    """config.example.yaml with its host: line uncommented for a local charger said "put
    the charger's API key from the go-e app here": a newcomer went looking for a cloud key
    that the local API does not take."""
    raw = base(token="replace-me")
    raw["chargers"][0].update(host="192.168.1.20")
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw)
    assert caught.value.problems == (
        "chargers[0].token: the local API (host) takes no token: remove the example's placeholder",
    )


def test_every_problem_of_a_charger_at_once() -> None:
    # A placeholder token and a too short interval: both, not the first found.
    with pytest.raises(ConfigError) as caught:
        parse_settings(base(token="replace-me", scan_interval=0.5))
    assert caught.value.problems == (
        "chargers[0].token: still the example's placeholder: put the charger's API key from"
        " the go-e app here (or use token_file)",
        "chargers[0].scan_interval: at least 1 s: the charger refreshes its values once a"
        " second (shorter only for a simulator on this machine: a loopback api_url or host)",
    )
    # Neither is left out when other keys of the file are wrong too.
    raw = base(token="replace-me", scan_interval=0.5, serial=12345, colour="red")
    raw["mqtt"].update(port="1883", keepalive=-1)
    with pytest.raises(ConfigError) as caught:
        parse_settings(raw)
    keys = [problem.split(":")[0] for problem in caught.value.problems]
    assert keys == [
        "mqtt.port", "mqtt.keepalive", "chargers[0].serial", "chargers[0].token",
        "chargers[0].scan_interval", "chargers[0].colour",
    ]  # fmt: skip
    # And a section's own checks say all they find: no serial and no token for the cloud.
    with pytest.raises(ConfigError) as caught:
        parse_settings(base(serial=None, token=None))
    assert caught.value.problems == (
        "chargers[0].serial: required for the cloud API (or give host for the local API)",
        "chargers[0].token: required for the cloud API (or give token_file)",
    )


def test_a_number_no_float_holds_is_a_config_error_naming_the_key() -> None:
    """A 400-digit price (or fuse) in the YAML is an int that float() cannot take: it
    ended check-config and start-up with an OverflowError traceback, not the key's name."""
    raw = base(tariff={"price_per_kwh": 10**400})
    with pytest.raises(ConfigError, match=r"^chargers\[0\]\.tariff\.price_per_kwh: "):
        parse_settings(raw)


def test_a_secret_shorter_than_eight_characters_is_warned_of_without_its_value() -> None:
    """The log masks a short secret wherever it stands as a word: a password as short
    as a word ("online") hides that word in every line. Said once, naming the keys."""
    raw = base(password="online")
    raw["mqtt"]["password"] = "hunter2"
    (warning,) = parse_settings(raw).warnings
    assert warning.startswith("chargers[0].password, mqtt.password: shorter than 8 characters")
    assert "hunter2" not in warning
    assert "online" not in warning
    raw["mqtt"]["password"] = "hunter22"
    raw["chargers"][0]["password"] = "online12"
    assert parse_settings(raw).warnings == ()
