"""Logs people can read: JSON lines or console, secrets masked, library logs included."""

from __future__ import annotations

import io
import json
import logging
import random
import re
from collections.abc import Iterator

import pytest
import structlog

from goe2mqtt.util.logs import ANYWHERE, MASK, SecretRedactor, configure_logging

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


def test_a_librarys_error_says_why_in_one_masked_line() -> None:
    """aiohttp's "Error handling request" came with no reason: the exception was dropped."""
    out = io.StringIO()
    configure_logging("info", "json", secrets=[SECRET], stream=out)
    try:
        raise ConnectionResetError(f"peer {SECRET} went away")
    except ConnectionResetError:
        logging.getLogger("aiohttp.server").exception("Error handling request from %s", "::1")
    (event,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert event["event"] == "Error handling request from ::1"
    assert event["error"] == f"ConnectionResetError: peer {MASK} went away"
    assert "Traceback" not in out.getvalue()


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


def _masked_one_by_one(secrets: list[str], text: str) -> str:
    """The redactor's rule, plainly: every secret, longest first, masked where found; one
    under ANYWHERE characters only where no word character (letter, digit, _) glues it
    to the text on a side where it ends in one itself."""
    for secret in sorted(set(secrets), key=len, reverse=True):
        if len(secret) >= ANYWHERE:
            text = text.replace(secret, MASK)
            continue
        start = r"(?<!\w)" if re.match(r"\w", secret[0]) else ""
        end = r"(?!\w)" if re.match(r"\w", secret[-1]) else ""
        text = re.sub(start + re.escape(secret) + end, MASK, text)
    return text


def test_a_short_secret_is_masked_as_a_word_not_inside_other_words() -> None:
    """A password "online" masked every "online" in every line: charger_online events,
    went_online, onlineness. Where it stands alone it may be the secret: masked."""
    redactor = SecretRedactor(["online", "pa$$"])
    for text in ("charger_online", "went_online at 12:00", "onlineness", "offline2online"):
        assert redactor.redact(text) == text
    assert redactor.redact("online") == MASK
    assert redactor.redact("mqtt://u:online@broker, 'online', password=online;") == (
        f"mqtt://u:{MASK}@broker, '{MASK}', password={MASK};"
    )
    # Glued on a side where the secret ends in a word character only: pa$$ is in pa$$word.
    assert redactor.redact("pa$$word xpa$$") == f"{MASK}word xpa$$"


def test_a_long_secret_is_masked_wherever_it_turns_up() -> None:
    token = "a1b2c3d4e5f6a7b8c9d0"  # ANYWHERE characters or more: no word is this
    assert len(token) >= ANYWHERE
    redactor = SecretRedactor([token])
    assert redactor.redact(f"Bearer{token}x {token}") == f"Bearer{MASK}x {MASK}"


def test_a_fleets_secrets_are_masked_as_one_by_one() -> None:
    """Past LINEAR secrets they are found by their first characters: the same masks -
    secrets inside others, overlapping ones, short ones, ones with the mask's character,
    at the text's ends and repeated."""
    rng = random.Random(32)
    secrets = [f"pw-{n:05d}-{rng.choice('abc')}" for n in range(3 * SecretRedactor.LINEAR)]
    secrets += ["pw-00001", "00001-a", "x1", "abc", "a*b**", "**c", "tok-42", "tok-42-long"]
    redactor = SecretRedactor(secrets)
    assert len(redactor.secrets) > SecretRedactor.LINEAR
    alphabet = ["pw-", "0000", "1", "-a", "-b", "x", "*", "tok-42", "-long", " ", "abc", "c"]
    texts = ["", "pw-00001-a", "pw-00001-apw-00001-a", "**c**c", "a*b***c", "tok-42-long tok-42"]
    texts += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))) for _ in range(3000)]
    texts += [f"401 for {s} and {t}" for s, t in zip(secrets, reversed(secrets), strict=True)]
    for text in texts:
        assert redactor.redact(text) == _masked_one_by_one(secrets, text), text


def test_a_fleets_secrets_are_masked_in_log_lines() -> None:
    out = io.StringIO()
    secrets = [f"password-of-charger-{n}" for n in range(10_000)]
    configure_logging("info", "json", secrets=secrets, stream=out)
    structlog.get_logger().warning("auth_failed", reason=f"refused {secrets[4321]}!")
    assert "password-of-charger" not in out.getvalue()
    assert json.loads(out.getvalue())["reason"] == f"refused {MASK}!"


def test_a_delta_of_unread_keys_is_counted_key_by_key_and_handed_on_as_nothing() -> None:
    """A named fleet counts the keys it drops per frame, not per key: the same counts."""
    from goe2mqtt.goe.pushed import ANY_KEY, KeyFilter, PushedStatus
    from goe2mqtt.util.logs import SkipCount

    skipped = SkipCount("websocket_frame_skipped", charger="garage")
    pushed = PushedStatus(KeyFilter(frozenset({"amp", "frc"}), max_value=8), skipped)
    assert pushed.keep({"amp": 16, "utc": "x"}, True) == {"amp": 16}
    assert pushed.keep({"rbt": 1, "utc": "y", 5: 1}, False) is None  # nothing read: nothing
    assert pushed.keep({"amp": 10, "rbt": 2}, False) == {"amp": 10}
    assert pushed.keep({"frc": "z" * 9}, False) is None  # too large: dropped, and said
    assert pushed.read() == {"amp": 10}
    assert skipped == {"a key goe2mqtt does not read": 5, "a value over 0 KiB": 1}
    # Without a list of keys: any key, up to MAX_KEYS, counted as before.
    anything = PushedStatus(ANY_KEY, SkipCount("websocket_frame_skipped"))
    assert anything.keep({"utc": "x", 5: 1}, False) == {"utc": "x"}
    assert anything.skipped == {"a key goe2mqtt does not read": 1}
