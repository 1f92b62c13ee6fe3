""".ci/setup: `--demo` installs what the demo needs, no more; without it, what the tests need.

The README's Quick start ran the full set-up before the demo: buildah, mmdebstrap,
Prometheus, Chromium and the test extras (Playwright, mypy, ...) for someone who only
wanted to see the bridge. Run here with apt-get and python3 stood in for, on a PATH
without the tests' tools: what it would install, not an installation.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEMO = {"mosquitto", "mosquitto-clients", "python3-venv"}
TESTS = {"buildah", "mmdebstrap", "prometheus", "chromium"}

# Records its arguments; `-m venv DIR` makes DIR/bin/python (itself again).
FAKE_PYTHON = """#!/bin/sh
echo "python3 $*" >> "$LOG"
if [ "$1" = -m ] && [ "$2" = venv ]; then
  mkdir -p "$3/bin" && cp "$0" "$3/bin/python"
fi
"""
FAKE_APT = """#!/bin/sh
echo "apt-get $*" >> "$LOG"
"""


def run_setup(tmp_path: Path, *options: str) -> tuple[int, list[str]]:
    """(exit code, the calls it made) of a copy of .ci/setup in an empty checkout."""
    checkout, tools, log = tmp_path / "checkout", tmp_path / "bin", tmp_path / "calls"
    (checkout / ".ci").mkdir(parents=True)
    shutil.copy(ROOT / ".ci" / "setup", checkout / ".ci" / "setup")
    tools.mkdir()
    for name, text in (
        ("python3", FAKE_PYTHON),
        ("apt-get", FAKE_APT),
        ("sudo", '#!/bin/sh\n"$@"\n'),
    ):
        (tools / name).write_text(text)
        (tools / name).chmod(0o755)
    for name in ("env", "dirname", "id", "mkdir", "cp"):  # what the script and fakes use
        real = shutil.which(name)
        assert real is not None, name
        (tools / name).symlink_to(real)
    log.touch()
    done = subprocess.run(
        ["/bin/bash", str(checkout / ".ci" / "setup"), *options],
        env={"PATH": str(tools), "LOG": str(log), "HOME": str(tmp_path)},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    return done.returncode, log.read_text().splitlines()


def installed(calls: list[str]) -> set[str]:
    return {
        word
        for call in calls
        if call.startswith("apt-get install")
        for word in call.split()[2:]
        if not word.startswith("-")
    }


def pip(calls: list[str]) -> list[str]:
    return [call for call in calls if " -m pip install " in call]


def test_the_demo_set_up_installs_mosquitto_and_the_package_alone(tmp_path: Path) -> None:
    code, calls = run_setup(tmp_path, "--demo")
    assert code == 0, calls
    assert installed(calls) <= DEMO, calls
    assert not installed(calls) & TESTS
    [install] = pip(calls)
    assert install.endswith(" -e ."), install  # no test extras


def test_the_full_set_up_installs_what_the_tests_need(tmp_path: Path) -> None:
    code, calls = run_setup(tmp_path)
    assert code == 0, calls
    assert installed(calls) >= TESTS, calls  # none of them on this PATH
    assert sum(call.startswith("apt-get update") for call in calls) == 1
    [install] = pip(calls)
    assert install.endswith(" -e .[test,demo]"), install


def test_an_unknown_option_is_refused(tmp_path: Path) -> None:
    code, calls = run_setup(tmp_path, "--demos")
    assert code == 2
    assert calls == []
