"""Polite polling, measured: bytes and CPU per poll, every key vs the live keys.

Not a test: it prints figures. The answer is the simulated 60.4 charger's (home22, a
car charging) for the filter goe2mqtt sends; the CPU is what the bridge does with an
answer (decode, keep our keys, map through the catalogue's incremental view), timed
over many polls with the values moving as a charging car's do.

    python bench/polite.py
"""

from __future__ import annotations

import json
import time
import urllib.parse

from goe2mqtt.catalogue import LIVE_KEYS, STATUS_KEYS, keep_known
from goe2mqtt.charger.view import ChargerView
from goe2mqtt.sim.charger import SimulatedCharger

POLLS = 2000
CONFIG_INTERVAL, SCAN_INTERVAL = 300.0, 10.0


def measure(keys: frozenset[str], every_key_each: int | None) -> tuple[float, float, float]:
    """(answer bytes, query bytes, CPU us) per poll."""
    now = [0.0]
    charger = SimulatedCharger("012345", clock=lambda: now[0])
    charger.plug_in()
    view = ChargerView()
    status: dict[str, object] = {}
    answer_bytes = query_bytes = 0
    cpu = 0.0
    for poll in range(POLLS):
        now[0] += SCAN_INTERVAL
        full = poll == 0 or (every_key_each is not None and poll % every_key_each == 0)
        asked = STATUS_KEYS if full or every_key_each is None else keys
        body = json.dumps(charger.status(asked)).encode()
        query = urllib.parse.urlencode({"filter": ",".join(sorted(asked))})
        answer_bytes += len(body)
        query_bytes += len(query)
        started = time.process_time()
        answer = keep_known(json.loads(body))
        status = answer if full else {**status, **answer}
        view.update(status, {})
        cpu += time.process_time() - started
    return answer_bytes / POLLS, query_bytes / POLLS, 1e6 * cpu / POLLS


def main() -> None:
    before = measure(STATUS_KEYS, None)
    after = measure(LIVE_KEYS, int(CONFIG_INTERVAL / SCAN_INTERVAL))
    print(f"keys per poll: before {len(STATUS_KEYS)}, after {len(LIVE_KEYS)} "
          f"(every key each {CONFIG_INTERVAL:.0f} s)")  # fmt: skip
    print("| polling | answer bytes/poll | filter bytes/poll | CPU us/poll |")
    print("|---|---:|---:|---:|")
    for name, (answer, query, cpu) in (("every key (before)", before), ("polite", after)):
        print(f"| {name} | {answer:.0f} | {query:.0f} | {cpu:.1f} |")


if __name__ == "__main__":
    main()
