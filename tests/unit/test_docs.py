"""The README is the public API's documentation: keep it in step with the code."""

from __future__ import annotations

from pathlib import Path

from goe2mqtt.catalogue import ENTITIES
from goe2mqtt.catalogue.table import markdown
from goe2mqtt.commands.services import SERVICES

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_the_readme_entity_table_is_what_the_catalogue_says() -> None:
    stale = "README's entity table is stale: run python scripts/readme-entities.py"
    assert markdown() in README, stale


def test_every_state_topic_is_in_the_readme_table() -> None:
    for entity in ENTITIES:
        if entity.value is not None:
            assert f"| `{entity.key}` | {entity.name} |" in README, entity.key


def test_every_command_service_is_documented() -> None:
    for service in SERVICES:
        assert f"| `{service.name}` |" in README, service.name


def test_readme_test_command_is_what_ci_runs() -> None:
    ci = (Path(__file__).resolve().parents[2] / ".ci" / "run").read_text()
    assert "`.venv/bin/python -m pytest`" in README
    assert ".venv/bin/python -m pytest\n" in ci
