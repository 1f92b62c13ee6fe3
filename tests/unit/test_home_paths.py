"""A path beginning with ~ in the config: a shell's home, but used as written.

`state_dir: ~/goe2mqtt` made a directory named "~" where the bridge started (check-config
said OK), and `goe2mqtt sessions` from elsewhere found no ledger; `token_file:
~/goe-token` was "cannot read ~/goe-token: No such file or directory" beside the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from goe2mqtt.cli import main
from goe2mqtt.config.problems import ConfigError
from goe2mqtt.config.settings import parse_settings

HINT = "(~ is not expanded here: give the full path, "


def config(**top: Any) -> dict[str, Any]:
    charger = {"name": "garage", "serial": "012345", "token": "t0k3n-5e1d"}
    return {"mqtt": {"host": "127.0.0.1"}, "chargers": [charger], **top}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    return tmp_path / "home"


def test_a_state_dir_or_health_file_from_home_is_a_warning_naming_both_places(
    home: Path, tmp_path: Path
) -> None:
    settings = parse_settings(config(state_dir="~/goe2mqtt", health_file="~/health.json"))
    assert settings.state_dir == "~/goe2mqtt"  # used as written: no file moves
    assert settings.warnings == (
        f"state_dir: ~/goe2mqtt is used as written, in {tmp_path}/~/goe2mqtt"
        f" {HINT}{home}/goe2mqtt)",
        f"health_file: ~/health.json is used as written, in {tmp_path}/~/health.json"
        f" {HINT}{home}/health.json)",
    )
    assert parse_settings(config(state_dir=str(home), health_file="/run/h.json")).warnings == ()


@pytest.mark.parametrize(
    ("top", "problem", "name"),
    [
        ({"chargers": [{"name": "garage", "serial": "012345", "token_file": "~/goe-token"}]},
         "chargers[0].token_file: cannot read ~/goe-token: No such file or directory",
         "goe-token"),
        ({"mqtt": {"host": "h", "password_file": "~/mqtt-password"}},
         "mqtt.password_file: cannot read ~/mqtt-password: No such file or directory",
         "mqtt-password"),
        ({"mqtt": {"host": "h", "tls": {"ca_file": "~/ca.crt"}}},
         "mqtt.tls.ca_file: cannot read ~/ca.crt", "ca.crt"),
    ],
)  # fmt: skip
def test_a_file_from_home_that_cannot_be_read_says_why(
    home: Path, top: dict[str, Any], problem: str, name: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(config(**top))
    assert caught.value.problems == (f"{problem} {HINT}{home}/{name})",)


def test_sessions_says_where_it_looked_in_full(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config(state_dir="~/books")))
    assert main(["sessions", "--config", str(path)]) == 1
    err = capsys.readouterr().err
    assert f"no ledger yet ({tmp_path}/~/books/goe2mqtt.sessions)" in err
    assert f"{HINT}{home}/books)" in err
    assert not (tmp_path / "~").exists()  # a report makes no directory
