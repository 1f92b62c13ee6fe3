"""A change on its way when a re-send owes it again (Home Assistant's birth), then lost
with the connection: a barrier (a command's result) waits for it, so it goes back with
the changes, where it was taken, not behind the re-send at its bulk pace (mqtt/pace.py).
Left in the re-send, every command's result waited for a thousand chargers' configs."""

from __future__ import annotations

from goe2mqtt.mqtt.retained import RetainedStore
from tests.unit.test_retained_family import _refused, configs

PLAIN = "goe2mqtt/garage/charging_current"


def fleet() -> RetainedStore:
    """A store whose configs the broker has: a re-send owes them again, as bulk."""
    store = RetainedStore(_refused)
    for n in range(3):
        store.put_family(configs(f"charger{n}"))
    while (taken := store._take()) is not None:
        store._delivered(taken[0], taken[2])
    return store


def test_a_topic_lost_after_a_birth_owed_it_again_goes_back_with_the_changes() -> None:
    store = fleet()
    store.put(PLAIN, b"16")
    barrier = store.barrier()  # a command's result, after the change
    taken = store._take()
    assert taken is not None
    assert taken[0] == PLAIN
    store.owe_everything()  # Home Assistant's birth, the change on its way
    store._undelivered(*taken)  # the connection lost before its PUBACK
    assert PLAIN in store._order, "the barrier waits for it"
    assert store._dirty.is_change(PLAIN), "behind the re-send's bulk"
    head = store._take()
    assert head is not None
    assert head[0] == PLAIN
    store._delivered(head[0], head[2])
    assert store._order._oldest() is None or store._order._oldest() > barrier


def test_a_family_lost_after_a_birth_owed_it_again_goes_back_with_the_changes() -> None:
    store = fleet()
    family = configs("new")
    store.put_family(family)  # a new charger's configs: a change
    sending = []
    while (taken := store._take()) is not None:
        sending.append(taken)
    assert sending
    store.owe_everything()
    for taken in sending:
        store._undelivered(*taken)
    assert family.key in store._order, "the barrier waits for it"
    assert store._dirty.is_change(family.key), "behind the re-send's bulk"
