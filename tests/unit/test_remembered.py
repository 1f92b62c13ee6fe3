"""What the bridge learnt about its chargers (serial, device facts), kept in state_dir:
read back by the next run; a file that cannot be read or written costs the memory only."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import structlog.testing

from goe2mqtt.bridge.remembered import Remembered
from goe2mqtt.catalogue.facts import DeviceFacts

FACTS = DeviceFacts.from_status({"typ": "go-eCharger", "fwv": "60.4", "amp": 16})


def test_serials_and_facts_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "state" / "goe2mqtt-1.chargers.json"  # the folder is made
    memory = Remembered(path)
    assert (memory.serial("garage"), memory.facts("garage")) == (None, None)
    memory.learn_serial("garage", "123456")
    memory.learn_facts("garage", FACTS)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # the same as the sites' memory
    assert not path.with_name(path.name + ".tmp").exists()
    assert json.loads(path.read_text()) == {
        "chargers": {"garage": {"serial": "123456", "facts": FACTS.to_json()}}
    }
    again = Remembered(path)
    assert again.serial("garage") == "123456"
    assert again.facts("garage") == DeviceFacts.from_json(FACTS.to_json())
    assert again.serial("carport") is None


def test_what_is_known_already_is_not_written_again(tmp_path: Path) -> None:
    path = tmp_path / "chargers.json"
    memory = Remembered(path)
    memory.learn_serial("garage", "123456")
    path.write_text(json.dumps({"chargers": {}}))  # a write would put the serial back
    memory.learn_serial("garage", "123456")
    assert json.loads(path.read_text()) == {"chargers": {}}


def test_entries_of_the_wrong_type_are_not_taken(tmp_path: Path) -> None:
    path = tmp_path / "chargers.json"
    path.write_text(
        json.dumps(
            {
                "chargers": {
                    "garage": {"serial": 7, "facts": [1]},
                    "carport": "x",
                    "shed": {},
                    "barn": {"facts": {"model": "no keys"}},  # facts that do not read as such
                }
            }
        )
    )
    memory = Remembered(path)
    assert (memory.serial("garage"), memory.facts("garage")) == (None, None)
    assert memory.facts("barn") is None
    memory.learn_serial("shed", "42")
    assert json.loads(path.read_text())["chargers"] == {
        "garage": {"serial": 7, "facts": [1]},
        "shed": {"serial": "42"},
        "barn": {"facts": {"model": "no keys"}},
    }  # the charger that was no object is gone, the rest kept as it was
    path.write_text(json.dumps(["not", "an", "object"]))
    assert Remembered(path).serial("shed") is None


def test_an_unreadable_or_unwritable_file_costs_the_memory_not_the_bridge(
    tmp_path: Path,
) -> None:
    path = tmp_path / "chargers.json"
    path.write_text("{not json")
    with structlog.testing.capture_logs() as logs:
        assert Remembered(path).serial("garage") is None
    assert [e["event"] for e in logs] == ["remembered_unreadable"]
    blocked = tmp_path / "file"
    blocked.write_text("")
    memory = Remembered(blocked / "chargers.json")  # a folder that cannot be made
    with structlog.testing.capture_logs() as logs:
        memory.learn_serial("garage", "123456")
        memory.learn_serial("carport", "654321")
    assert [e["event"] for e in logs] == ["remembered_not_saved"]  # said once
    assert memory.serial("carport") == "654321"  # still known for this run


@pytest.mark.parametrize("bound", ["1" + "0" * 400, "NaN", "1e400", '"16"'])
def test_hand_edited_facts_with_absurd_ranges_are_ignored_named_never_a_crash(
    tmp_path: Path, bound: str
) -> None:
    """Found in review: a 400-digit bound in chargers.json crashed start-up (float() of
    it raised OverflowError, which from_json did not expect); NaN reached the facts."""
    path = tmp_path / "goe2mqtt.chargers.json"
    facts = json.dumps(FACTS.to_json())
    assert '"ranges": [[' in facts  # the facts have a range to spoil
    spoiled = facts.replace('"ranges": [[', f'"ranges": [["amp", 6, {bound}], [', 1)
    path.write_text(f'{{"chargers": {{"garage": {{"serial": "123456", "facts": {spoiled}}}}}}}')
    memory = Remembered(path)
    with structlog.testing.capture_logs() as logs:
        assert memory.facts("garage") is None
    assert memory.serial("garage") == "123456"  # the rest of the entry stays
    assert [(e["event"], e["file"], e["key"]) for e in logs] == [
        ("remembered_unreadable", str(path), "chargers.garage.facts")
    ]
