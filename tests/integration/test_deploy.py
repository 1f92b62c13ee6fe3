"""What ships for deployments: the systemd unit passes systemd's own checks."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "contrib" / "goe2mqtt.service"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="needs systemd-analyze")
def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    # Installed as its header says, goe2mqtt is at /opt/goe2mqtt; here, our venv's.
    program = Path(sys.executable).parent / "goe2mqtt"
    unit = tmp_path / "goe2mqtt.service"
    unit.write_text(UNIT.read_text().replace("/opt/goe2mqtt/bin/goe2mqtt", str(program)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""


def test_the_unit_keeps_the_journal_and_does_not_restart_a_refused_start() -> None:
    text = UNIT.read_text()
    assert "StateDirectory=goe2mqtt" in text  # the journal survives restarts and reboots
    assert "RestartPreventExitStatus=2" in text  # bad config, second instance: exit 2
    assert "groupadd --system goe2mqtt" in text  # the group SupplementaryGroups needs


def test_the_compose_broker_is_not_open_to_the_lan() -> None:
    """Its Mosquitto allows anonymous clients: published on all interfaces, anyone on
    the LAN could stop charging or restart the wallbox."""
    import yaml

    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    ports = compose["services"]["mosquitto"]["ports"]
    anonymous = "allow_anonymous true" in (ROOT / "contrib" / "mosquitto.conf").read_text()
    for port in ports:
        assert not anonymous or str(port).startswith("127.0.0.1:"), port
