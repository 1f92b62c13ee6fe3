"""The floor for bench/idle_rss.py: the stack goe2mqtt stands on, and nothing of its own.

Imports aiohttp, aiomqtt, pydantic, structlog, yaml and sqlite3, makes a TLS context,
prints "ready" and waits for its stdin to close. With the argument "model" it also
defines one pydantic model: `import pydantic` alone loads little of pydantic (its
BaseModel and schema machinery load with the first model), so this second floor is the
stack as anything that validates with pydantic uses it.

structlog imports rich and greenlet when they happen to be installed (test tools pulled
them into the dev venv; a plain `pip install .` has neither): they are kept out here as
the daemon keeps them out (goe2mqtt/cli/__init__.py), so the floor is the same stack in
every environment.
"""

from __future__ import annotations

import sys

for optional in ("rich", "greenlet", "better_exceptions"):
    sys.modules.setdefault(optional, None)  # type: ignore[arg-type]

import sqlite3  # noqa: E402, F401
import ssl  # noqa: E402

import aiohttp  # noqa: E402, F401
import aiomqtt  # noqa: E402, F401
import pydantic  # noqa: E402
import structlog  # noqa: E402, F401
import yaml  # noqa: E402, F401

context = ssl.create_default_context()
if sys.argv[1:] == ["model"]:

    class One(pydantic.BaseModel):
        value: int = 0


print("ready", flush=True)
sys.stdin.read()
