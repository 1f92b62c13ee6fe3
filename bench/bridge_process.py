"""goe2mqtt as its own process for a benchmark: from this checkout, or another tree's.

``python -m goe2mqtt`` puts its working directory first on the path, before PYTHONPATH:
a bridge started from anywhere else runs whatever goe2mqtt is there (or the installed
one), not the tree asked for. So the bridge runs in its tree, with the tree first on
PYTHONPATH as well; ``source`` asks the same way where its goe2mqtt comes from.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]  # this checkout


def tree_of(bridge_path: str | None) -> Path:
    """The tree whose goe2mqtt the bridge runs: --bridge-path's, else this checkout."""
    return Path(bridge_path).resolve() if bridge_path else ROOT


def environment(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    return env


def start(
    tree: Path, arguments: Sequence[str], log: Path, *, python: Sequence[str] = ()
) -> subprocess.Popen[bytes]:
    """``python [python...] -m goe2mqtt [arguments...]`` run from ``tree``; its output
    (stdout and stderr) into ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, *python, "-m", "goe2mqtt", *arguments],
            stdout=out, stderr=subprocess.STDOUT, env=environment(tree), cwd=tree,
        )  # fmt: skip


def source(tree: Path) -> Path:
    """The tree a bridge started from ``tree`` takes goe2mqtt from."""
    found = subprocess.run(
        [sys.executable, "-c", "import goe2mqtt; print(goe2mqtt.__file__)"],
        env=environment(tree), cwd=tree, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return Path(found.stdout.strip()).parents[1]


def stop(bridge: subprocess.Popen[bytes], wait: float = 30.0) -> None:
    """SIGTERM; killed if it has not ended within ``wait`` s (still sending what it owes)."""
    bridge.terminate()
    try:
        bridge.wait(wait)
    except subprocess.TimeoutExpired:
        bridge.kill()
        bridge.wait()


async def until_online(url: str, n: int, bridge: subprocess.Popen[bytes], log: Path) -> float:
    """Seconds until the status page at ``url`` counts ``n`` chargers online; the end of
    ``log`` raised should the bridge end first."""
    started = time.monotonic()
    async with aiohttp.ClientSession() as session:
        while True:
            await asyncio.sleep(2)
            assert bridge.poll() is None, log.read_text()[-2000:]
            try:  # a page of one row says how many match: cheap at any N
                async with session.get(f"{url}/?state=online&size=1") as answer:
                    text = await answer.text()
            except aiohttp.ClientError:
                continue
            pages = text.split('data-total="', 1)
            if len(pages) == 2 and int(pages[1].split('"', 1)[0]) >= n:
                return time.monotonic() - started
