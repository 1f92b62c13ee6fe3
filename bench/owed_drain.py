"""The CPU a retained store's drain of N owed names costs (mqtt/owed.py).

Not a test. N topics are put (owed as changes) and then all owed again (a re-send, as
at a reconnect); each queue is drained as the sender drains it - _bulk() before each
_take(), every publish acknowledged - with no broker: the figure is the queue walk's
and the store's bookkeeping, nothing of the network. A dict's walk from its front past
every entry taken made it quadratic (~3 s of CPU for 100 000 names).

    python bench/owed_drain.py --sizes 10000,100000
"""

from __future__ import annotations

import argparse
import gc
import time

from goe2mqtt.mqtt.retained import RetainedStore


def drain(store: RetainedStore) -> int:
    """Take everything owed, as the sender does, each acknowledged at once."""
    taken = 0
    while True:
        store._bulk()
        item = store._take()
        if item is None:
            return taken
        store._delivered(item[0], item[2])
        taken += 1


def one(n: int) -> tuple[float, float]:
    store = RetainedStore(on_refused=lambda exc: None)
    for i in range(n):
        store.put(f"goe2mqtt/c{i // 100}/t{i % 100}", b"%d" % i)
    gc.collect()
    began = time.process_time()
    assert drain(store) == n
    changes = time.process_time() - began
    store.owe_everything()
    began = time.process_time()
    assert drain(store) == n
    return changes, time.process_time() - began


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    args = parser.parse_args()
    for n in (int(size) for size in args.sizes.split(",")):
        changes, again = one(n)
        print(f"{n:>8} names: changes drained in {changes:.3f} CPU-s, re-sends {again:.3f}")


if __name__ == "__main__":
    main()
