"""Logs people can read: JSON lines or console, secrets masked, library logs included."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from goe2mqtt.util.logs import configure_logging

SECRET = "tok-never-in-logs-3141"


@pytest.fixture(autouse=True)
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)


def test_json_lines_with_secrets_masked_and_library_warnings_included() -> None:
    out = io.StringIO()
    configure_logging("info", "json", secrets=[SECRET], stream=out)
    log = structlog.get_logger()
    log.info("charger_offline", charger="garage", reason=f"401 for token {SECRET}")
    log.debug("not_shown_at_info")
    logging.getLogger("paho.mqtt").error("failed to receive on socket: %s", "reset")
    logging.getLogger("aiohttp").info("library chatter below warning stays out")
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e["event"] for e in events] == [
        "charger_offline",
        "failed to receive on socket: reset",
    ]
    assert events[0]["charger"] == "garage"
    assert events[0]["level"] == "info"
    assert events[1] == {**events[1], "level": "error", "logger": "paho.mqtt"}
    assert SECRET not in out.getvalue()


def test_console_format_is_one_readable_line_per_event() -> None:
    out = io.StringIO()
    configure_logging("debug", "console", stream=out)
    structlog.get_logger().warning("poll_failed", charger="garage", reason="timed out")
    (line,) = out.getvalue().splitlines()
    assert "poll_failed" in line
    assert "charger=garage" in line
    assert "reason='timed out'" in line


def test_a_routine_skip_is_logged_once_as_info_a_suspect_one_as_a_warning() -> None:
    """Every real charger sends keys goe2mqtt does not read (its clock, hundreds of
    settings): dropping them is routine and must not read as trouble at each connect;
    what only a broken or hostile peer sends stays a warning."""
    from goe2mqtt.goe.pushed import KeyFilter, PushedStatus
    from goe2mqtt.util.logs import SkipCount

    skipped = SkipCount("websocket_frame_skipped", charger="garage")
    pushed = PushedStatus(KeyFilter(frozenset({"amp"})), skipped)
    with structlog.testing.capture_logs() as logs:
        pushed.replace({"amp": 16, "rbt": 1, "utc": "x"})
        pushed.update({"rbt": 2})
        skipped.skip("not JSON")
    assert skipped == {"a key goe2mqtt does not read": 3, "not JSON": 1}
    levels = {e["reason"]: e["log_level"] for e in logs}
    assert levels == {"a key goe2mqtt does not read": "info", "not JSON": "warning"}
