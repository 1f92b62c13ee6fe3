"""A real Prometheus (Debian's package) for tests: its own config and data directory,
a free loopback port, started by the test that needs it and killed by its PID."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from .conftest import WAIT
from .web import free_port


def _start(folder: Path, target: str, interval: str,
           token: str | None) -> tuple[subprocess.Popen[bytes], int]:  # fmt: skip
    binary = shutil.which("prometheus") or "/usr/bin/prometheus"
    assert os.access(binary, os.X_OK), "prometheus is not installed (.ci/setup installs it)"
    folder.mkdir(parents=True, exist_ok=True)
    job: dict[str, Any] = {"job_name": "goe2mqtt", "static_configs": [{"targets": [target]}]}
    if token is not None:  # as the README tells: the token in a file Prometheus reads
        (folder / "token").write_text(token)
        job["authorization"] = {"credentials_file": str(folder / "token")}
    config = folder / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": interval, "scrape_timeout": interval,
                   "evaluation_interval": interval},
        "scrape_configs": [job],
    }))  # fmt: skip
    port = free_port()
    with (folder / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return process, port


@contextlib.asynccontextmanager
async def prometheus(folder: Path, target: str, *, interval: str = "1s",
                     token: str | None = None) -> AsyncIterator[str]:  # fmt: skip
    """Prometheus scraping ``target`` (host:port) every ``interval``; yields its URL."""
    process, port = await asyncio.to_thread(_start, folder, target, interval, token)
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session, asyncio.timeout(3 * WAIT):
            while True:
                assert process.poll() is None, "prometheus ended: see prometheus.log"
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.get(f"{url}/-/ready") as answer:
                        if answer.status == 200:
                            break
                await asyncio.sleep(0.1)
        yield url
    finally:
        os.kill(process.pid, signal.SIGKILL)
        await asyncio.to_thread(process.wait)


async def query(url: str, promql: str) -> list[dict[str, Any]]:
    """The instant query's result vector."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{url}/api/v1/query", params={"query": promql}) as answer,
    ):
        body = await answer.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def wait_for_value(url: str, promql: str, predicate: Any, within: float = 3 * WAIT
                         ) -> list[dict[str, Any]]:  # fmt: skip
    """Query until the vector satisfies ``predicate`` (bounded: liveness, not speed)."""
    last: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(within):
            while True:
                last = await query(url, promql)
                if predicate(last):
                    return last
                await asyncio.sleep(0.25)
    except TimeoutError:
        raise AssertionError(f"{promql}: {last}") from None
