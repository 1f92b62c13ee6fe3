"""A SIGTERM in the daemon's first moments: a clean stop, exit 0, as at any later time."""

from __future__ import annotations

import signal
from pathlib import Path

from goe2mqtt.sim.broker import MosquittoBroker
from goe2mqtt.sim.simulator import Simulator

from ..conftest import Daemon, make_settings, until, write_config


async def test_a_sigterm_before_the_event_loop_listens_is_a_clean_stop(
    broker: MosquittoBroker, simulator: Simulator, tmp_path: Path
) -> None:
    """Found in review: the daemon's handlers came with its event loop, after the
    imports, the config and the bridge's set-up (~0.4 s). A SIGTERM before (a container
    stopped right after its start) ended it by the default action: exit 143 (-15), no
    word in the log. It is sent here at the config's warning, logged before the bridge
    is even built: noted, and the daemon stops cleanly once its loop takes over."""
    raw = make_settings(broker, simulator, scan_interval=60, idle_scan_interval=30)
    raw["state_dir"] = str(tmp_path / "state")
    daemon = Daemon(write_config(tmp_path, raw))
    await daemon.start()
    await until(lambda: b'"config_warning"' in daemon.stderr, "the config's warning logged")
    code = await daemon.end(signal.SIGTERM)
    assert code == 0, daemon.stderr.decode(errors="replace")[-2000:]
    assert "bridge_stopped" in [e.get("event") for e in daemon.events()]
