"""Configuration through the command line: check-config, exit codes, one line per problem."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from goe2mqtt.config.problems import ConfigError
from goe2mqtt.config.settings import parse_settings

from ..certs import make_certificates
from ..unit.test_config import ROOT, SECRET, base  # the same files and settings


def test_tls_settings(tmp_path: Path) -> None:
    certs = make_certificates(tmp_path)
    raw = base()
    raw["mqtt"]["tls"] = {"ca_file": str(certs.ca)}
    tls = parse_settings(raw).mqtt.tls
    assert tls is not None
    assert (tls.ca_file, tls.insecure) == (str(certs.ca), False)
    assert tls.context().check_hostname

    client = {"certfile": str(certs.server_cert), "keyfile": str(certs.server_key)}
    raw["mqtt"]["tls"] = {"ca_file": str(certs.ca), **client, "insecure": True}
    tls = parse_settings(raw).mqtt.tls
    assert tls is not None
    assert not tls.context().check_hostname

    raw["mqtt"]["tls"] = {"certfile": str(certs.server_cert)}
    with pytest.raises(ConfigError, match=r"^mqtt\.tls\.keyfile: certfile and keyfile go together"):
        parse_settings(raw)
    raw["mqtt"]["tls"] = {"ca_file": str(tmp_path / "missing.crt")}
    with pytest.raises(ConfigError, match=r"^mqtt\.tls\.ca_file: cannot read"):
        parse_settings(raw)
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello")
    raw["mqtt"]["tls"] = {"ca_file": str(not_pem)}
    with pytest.raises(ConfigError, match=r"^mqtt\.tls\.ca_file: not usable for TLS"):
        parse_settings(raw)
    certs.server_key.chmod(0o644)
    raw["mqtt"]["tls"] = client
    with pytest.raises(ConfigError, match=r"^mqtt\.tls\.keyfile: .* readable or writable"):
        parse_settings(raw)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "goe2mqtt", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_check_config_accepts_a_good_file_and_refuses_the_unedited_example(
    tmp_path: Path,
) -> None:
    result = _cli("check-config", "--config", str(ROOT / "config.example.yaml"))
    assert result.returncode == 2
    assert "chargers[0].token: still the example's placeholder" in result.stderr
    edited = tmp_path / "config.yaml"
    text = (ROOT / "config.example.yaml").read_text()
    edited.write_text(text.replace('"replace-me"', '"a1b2c3d4e5"'))
    result = _cli("check-config", "--config", str(edited))
    assert result.returncode == 0, result.stderr
    assert "OK (1 charger(s): example_charger)" in result.stdout


def test_check_config_reports_every_error_at_once(tmp_path: Path) -> None:
    raw = base(serial="12345")
    raw["mqtt"]["port"] = 0
    raw["chargers"][0]["scan_interval"] = 0.01  # 100 requests a second to the cloud
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = _cli("check-config", "--config", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0] == "goe2mqtt: 3 config errors:"
    assert lines[1].startswith("  mqtt.port: ")
    assert lines[2].startswith("  chargers[0].serial: must be the 6-digit serial")
    # said with the others, though the serial's error keeps the section's own checks out
    assert lines[3].startswith("  chargers[0].scan_interval: at least 1 s")
    raw = base()
    raw["chargers"][0]["scan_interval"] = 0.01
    path.write_text(yaml.safe_dump(raw))
    result = _cli("check-config", "--config", str(path))
    assert "chargers[0].scan_interval: at least 1 s: the charger refreshes" in result.stderr
    raw["chargers"][0]["api_url"] = "http://127.0.0.1:8080/012345"  # a simulator may
    path.write_text(yaml.safe_dump(raw))
    assert _cli("check-config", "--config", str(path)).returncode == 0


@pytest.mark.parametrize("command", [["check-config"], ["run"], []])
def test_bad_config_exits_2_with_one_line_and_no_traceback(
    tmp_path: Path, command: list[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base(serial="12345")))
    result = _cli(*command, "--config", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "chargers[0].serial" in result.stderr
    assert "Traceback" not in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_invalid_yaml_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text("mqtt: [unclosed\n")
    result = _cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert "invalid YAML at line" in result.stderr
    result = _cli("check-config", "--config", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2
    assert "cannot read config file" in result.stderr


def test_version() -> None:
    result = _cli("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("goe2mqtt ")


def test_a_key_given_twice_is_refused_naming_both_lines(tmp_path: Path) -> None:
    """host: added above the example's optional host would be overwritten silently."""
    path = tmp_path / "config.yaml"
    path.write_text(
        "mqtt:\n  host: 127.0.0.1\nchargers:\n  - name: garage\n"
        "    host: 192.168.1.20\n    serial: '012345'\n    host: null\n"
    )
    result = _cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert "chargers[0].host: given twice (lines 5 and 7)" in result.stderr, result.stderr


def test_check_config_says_the_configuration_came_from_the_environment(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "GOE2MQTT_MQTT__HOST": "127.0.0.1",
        "GOE2MQTT_CHARGERS__0__NAME": "garage",
        "GOE2MQTT_CHARGERS__0__HOST": "192.168.1.20",
    }
    missing = tmp_path / "config.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "goe2mqtt", "check-config", "--config", str(missing)],
        capture_output=True, text=True, timeout=60, env=env, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"the environment (3 GOE2MQTT_* variables; no file {missing})")
    assert f"{missing}: OK" not in result.stdout


def test_check_config_refuses_a_token_over_plain_http_unless_allowed(tmp_path: Path) -> None:
    raw = base(api_url="http://192.168.1.20/api/012345")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    result = _cli("check-config", "--config", str(config))
    assert result.returncode == 2, result.stdout
    assert (
        "chargers[0].api_url: http://192.168.1.20/api/012345 is plain http: the token would"
        " travel in clear text" in result.stderr
    )
    assert "allow_insecure: true" in result.stderr
    assert SECRET not in result.stderr + result.stdout
    raw["chargers"][0]["allow_insecure"] = True
    config.write_text(yaml.safe_dump(raw))
    result = _cli("check-config", "--config", str(config))
    assert result.returncode == 0, result.stderr
    assert "OK (1 charger(s): garage)" in result.stdout
    assert "warning: charger garage: api_url: http://192.168.1.20" in result.stderr
    assert SECRET not in result.stderr + result.stdout


def test_check_config_refuses_a_state_dir_the_daemon_could_not_use(tmp_path: Path) -> None:
    """A file on state_dir's path stopped the daemon at start (exit 2, "cannot open the
    command journal ... Not a directory") after check-config had said OK."""
    a_file = tmp_path / "afile"
    a_file.write_text("")
    raw = base()
    raw["state_dir"] = str(a_file / "state")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = _cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert f"state_dir: {a_file} is not a directory" in result.stderr
    raw["state_dir"] = str(tmp_path / "new" / "state")  # made at the first start
    path.write_text(yaml.safe_dump(raw))
    result = _cli("check-config", "--config", str(path))
    assert result.returncode == 0, result.stderr
    assert "state_dir" not in result.stderr


def test_check_config_refuses_a_state_dir_no_file_system_can_name(tmp_path: Path) -> None:
    """A directory name longer than the file system takes (255 bytes): the daemon stops
    with exit 2 ("cannot open the command journal ... File name too long"); check-config
    crashed with a traceback (exit 1) where it names the key."""
    raw = base()
    raw["state_dir"] = str(tmp_path / ("d" * 300) / "state")
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(raw))
    result = _cli("check-config", "--config", str(path))
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    assert "config error: state_dir: " in result.stderr
    assert "name too long" in result.stderr


def test_check_config_refuses_a_price_with_a_leading_zero(tmp_path: Path) -> None:
    """YAML 1.1 reads 030 as the octal number 24: check-config says so, naming the key."""
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base()) + "tariff:\n  price_per_kwh: 030\n")
    result = _cli("check-config", "--config", str(path))
    assert result.returncode == 2
    assert "tariff.price_per_kwh: 030 has a leading zero" in result.stderr
    assert "octal number 24: write 30" in result.stderr
    path.write_text(yaml.safe_dump(base()) + "tariff:\n  price_per_kwh: 0.30\n")
    assert _cli("check-config", "--config", str(path)).returncode == 0


@pytest.mark.parametrize(
    ("where", "key"),
    [(("mqtt",), "base_topic"), (("mqtt",), "discovery_prefix"), (("tariff",), "price_topic"),
     (("chargers", 0), "mqtt_prefix")],
)  # fmt: skip
def test_a_topic_longer_than_mqtt_holds_is_a_config_error_naming_its_key(
    tmp_path: Path, where: tuple[str | int, ...], key: str
) -> None:
    """MQTT holds a topic of at most 65 535 bytes. A base_topic of 70 000 characters
    passed check-config, and the bridge then crashed at start-up (paho: Invalid
    subscription filter; exit 1, a traceback, a restart loop under systemd) instead of
    exit 2 naming the key."""
    raw = base()
    section: Any = raw
    for step in where:
        section = section.setdefault(step, {}) if isinstance(step, str) else section[step]
    section[key] = "a" * 70_000
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(raw))
    dotted = ".".join(f"[{s}]" if isinstance(s, int) else s for s in where).replace(".[", "[")
    for command in (("check-config", "--config", str(config)), ("--config", str(config))):
        result = _cli(*command)
        assert result.returncode == 2, (command, result.stderr[-2000:])
        assert f"{dotted}.{key}:" in result.stderr, result.stderr[-2000:]
