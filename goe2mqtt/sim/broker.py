"""Brokers of our own for the demo and the tests, never a system-wide one.

MosquittoBroker runs Mosquitto in the foreground on a free loopback port with its
own temporary config and stops it by PID. EmbeddedBroker runs amqtt in-process
for machines without Mosquitto.
"""

from __future__ import annotations

import atexit
import getpass
import importlib.util
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any


class BrokerUnavailable(RuntimeError):
    """Mosquitto is not installed or would not start."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class MosquittoBroker:
    def __init__(
        self,
        *,
        port: int | None = None,
        persistence: bool = False,
        extra_config: tuple[str, ...] = (),
        binary: str | None = None,
        own_session: bool = False,
    ) -> None:
        found = binary or shutil.which("mosquitto") or _sbin("mosquitto")
        if found is None:
            raise BrokerUnavailable(
                "mosquitto is not installed (apt-get install -y mosquitto mosquitto-clients)"
            )
        self.binary = found
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="goe2mqtt-mosquitto-"))
        self._persistence = persistence
        self._extra = extra_config
        # The demo's broker: a terminal's Ctrl-C goes to the whole foreground process
        # group, and a broker that dies with it cuts off the bridge's clean stop. In a
        # session of its own it is stopped by us, after the bridge; at exit at the latest.
        self._own_session = own_session
        if own_session:
            atexit.register(self.close)
        self._process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def available() -> bool:
        return (shutil.which("mosquitto") or _sbin("mosquitto")) is not None

    @property
    def log_path(self) -> Path:
        return self._dir / "mosquitto.log"

    def _write_config(self) -> Path:
        lines = [
            f"listener {self.port} {self.host}",
            "allow_anonymous true",
            f"persistence {'true' if self._persistence else 'false'}",
            f"persistence_location {self._dir}/",
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "log_type notice",
            # As root Mosquitto would switch to its own user and lose our temp dir.
            f"user {getpass.getuser()}",
            *self._extra,
        ]
        path = self._dir / "mosquitto.conf"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def start(self, timeout: float = 10.0) -> None:
        config = self._write_config()
        with open(self.log_path, "ab") as log_file:
            self._process = subprocess.Popen(
                [self.binary, "-c", str(config)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=self._own_session,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise BrokerUnavailable(f"mosquitto exited: {self._log_tail()}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.kill()
        raise BrokerUnavailable(f"mosquitto did not listen on port {self.port}: {self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-500:].strip()
        except OSError:
            return "(no log)"

    def _signal(self, sig: signal.Signals, wait: float) -> None:
        process = self._process
        if process is None:
            return
        if process.poll() is None:
            os.kill(process.pid, sig)
            try:
                process.wait(wait)
            except subprocess.TimeoutExpired:
                os.kill(process.pid, signal.SIGKILL)
                process.wait()
        self._process = None

    def stop(self) -> None:
        """Stop cleanly (SIGTERM): a persistent broker writes its sessions to disk."""
        self._signal(signal.SIGTERM, 5.0)

    def kill(self) -> None:
        """Die the hard way (SIGKILL), as a crashed or power-cut broker does."""
        self._signal(signal.SIGKILL, 5.0)

    def pause(self) -> None:
        """Freeze the broker (SIGSTOP): connections stay open, nothing is answered."""
        if self._process is not None:
            os.kill(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self._process is not None:
            os.kill(self._process.pid, signal.SIGCONT)

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        self.kill()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> MosquittoBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _sbin(name: str) -> str | None:
    candidate = Path("/usr/sbin") / name
    return str(candidate) if candidate.exists() else None


class EmbeddedBroker:
    """amqtt inside this process: the demo's broker on a machine without Mosquitto.

    amqtt speaks MQTT 3.1.1 only; clients of it must not ask for MQTT 5.
    Needs the optional extra: pip install '.[demo]' in this repository.
    """

    def __init__(self, *, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._broker: Any = None

    @staticmethod
    def available() -> bool:
        return importlib.util.find_spec("amqtt") is not None

    async def start(self) -> None:
        from amqtt.broker import Broker  # type: ignore[import-untyped, import-not-found, unused-ignore]

        self._broker = Broker(
            {
                "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
                "plugins": {
                    "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
                },
            }
        )
        await self._broker.start()

    async def stop(self) -> None:
        if self._broker is not None:
            await self._broker.shutdown()
            self._broker = None
