"""Secrets in the config: printable, and in files only their owner can read.

A token travels in an HTTP header and a password in MQTT's CONNECT: a control
character (a stray newline from an editor or `echo`) would break every request long
after start-up. A secret file that other users can read is refused unless the
config says that is on purpose (allow_insecure_secrets).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from goe2mqtt.config.values import Context, SecretStr
from goe2mqtt.util.text import has_control


def check_printable(value: str, key: str) -> None:
    """Secrets travel in HTTP headers and MQTT CONNECT: a newline (often a stray one
    from an editor or `echo`) would break every request, long after start-up."""
    if has_control(value):
        raise ValueError(f"{key}: contains a control character (a newline or tab?): remove it")


def check_secret_file(path: str, key: str, context: Context) -> None:
    """Refuse a secret that other users of the machine can read or change."""
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise ValueError(f"{key}: cannot read {path}: {exc.strerror}") from None
    if not mode & (stat.S_IROTH | stat.S_IWOTH | stat.S_IWGRP):
        return
    problem = f"{key}: {path} is readable or writable by other users (chmod 600 or 640 it)"
    if context is None:
        context = {}
    if not context.get("allow_insecure_secrets", False):
        raise ValueError(f"{problem}, or set allow_insecure_secrets: true")
    at = context.get("at")  # the section's key path (config/schema.py): said in full
    context.setdefault("warnings", []).append(f"{at}.{problem}" if at else problem)


def read_secret_file(path: str, key: str, context: Context) -> str:
    check_secret_file(path, key, context)
    try:
        secret = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"{key}: cannot read {path}: {exc.strerror}") from None
    if not secret:
        raise ValueError(f"{key}: {path} is empty")
    check_printable(secret, key)
    return secret


def load_secret(
    value: SecretStr | None, path: str | None, key: str, context: Context
) -> SecretStr | None:
    """A secret given as ``key`` or in the file ``{key}_file`` (never both), checked."""
    if path is not None:
        if value is not None:
            raise ValueError(f"{key}_file: give either {key} or {key}_file, not both")
        return SecretStr(read_secret_file(path, f"{key}_file", context))
    if value is not None:
        check_printable(value.get_secret_value(), key)
    return value
