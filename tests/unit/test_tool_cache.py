"""The tests' cache of real clients: one install at a time, a dead one started again."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from ..tool_cache import installed_once


def waiting_on(lock: Path) -> None:
    """Until a process waits for ``lock`` (Linux lists a blocked flock in /proc/locks
    with "->" and the file's device:inode)."""
    inode = f":{lock.stat().st_ino} "
    for _ in range(6000):
        for line in Path("/proc/locks").read_text().splitlines():
            if "->" in line and inode in line:
                return
        time.sleep(0.01)
    raise AssertionError(f"nobody waited for {lock}")


def test_a_second_run_waits_for_the_install_under_way_and_does_not_redo_it(
    tmp_path: Path,
) -> None:
    target = tmp_path / "tool-1.0"
    started, release = threading.Event(), threading.Event()
    second_installs: list[Path] = []

    def first_install(into: Path) -> None:
        (into / "binary").write_text("first")
        started.set()
        assert release.wait(60), "the test never let the first install finish"

    first = threading.Thread(target=installed_once, args=(target, first_install, "1.0"))
    first.start()
    assert started.wait(60)
    second = threading.Thread(target=installed_once, args=(target, second_installs.append, "1.0"))
    second.start()
    waiting_on(tmp_path / "tool-1.0.lock")  # the second is at the lock, not past it
    release.set()
    first.join(60)
    second.join(60)
    assert not first.is_alive()
    assert not second.is_alive()
    # The second found the first's install done once it had the lock: nothing cleared.
    assert second_installs == []
    assert (target / "binary").read_text() == "first"
    assert (target / ".installed").read_text() == "1.0\n"


def test_what_a_dead_install_left_is_cleared_and_installed_again(tmp_path: Path) -> None:
    target = tmp_path / "tool-1.0"
    target.mkdir()
    (target / "half-written").write_text("a killed npm's leftovers")

    def install(into: Path) -> None:
        assert list(into.iterdir()) == []
        (into / "binary").write_text("whole")

    assert installed_once(target, install, "1.0") == target
    assert sorted(p.name for p in target.iterdir()) == [".installed", "binary"]
    # Done once: a later call installs nothing.
    assert installed_once(target, lambda into: (_ for _ in ()).throw(AssertionError), "1.0")
