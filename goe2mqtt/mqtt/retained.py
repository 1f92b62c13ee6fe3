"""What the MQTT session keeps retained on the broker, and the sender that puts it there.

Publishing is change-only and never waits for the broker: a sender drains the topics
owed, newest value per topic, so a stalled broker costs one entry per topic, not a
backlog; a reconnect owes everything again (the broker may have lost it).

The store also orders the session's other messages after it: ``barrier()`` names every
change made so far, and ``settled(barrier)`` waits until the broker acknowledged each of
them (or a newer value of the same topic; mqtt/barrier.py). A command's result goes out
only after the states it reports.

Payloads of PACK_FROM bytes or more (a site's state) are kept zlib-compressed once they
stayed unchanged for a while (mqtt/packing.py): a topic that changes often costs no
compression. A family of topics whose payloads can be built again from a few facts (a
charger's 130 discovery configs, ~50 KB) is not held at all: the store keeps the family
and builds its members one at a time whenever they are sent, so a reconnect or Home
Assistant's birth costs the building, not memory held meanwhile. A family moves in the
order as one: its position is its first change not yet taken (changed again, it keeps
it). A live family (a charger's state topics, built from what its view says now) changes
one member at a time: ``put_member`` owes the member, whose payload is built when it is
taken for sending, the newest then; no copy of it is kept meanwhile, nor compressed, nor
compared (the caller knows it changed). Knows MQTT and nothing of go-e.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import aiomqtt
import structlog

from goe2mqtt.mqtt import sender
from goe2mqtt.mqtt.barrier import OrderBarrier
from goe2mqtt.mqtt.client import SEND_WINDOW, PublishRefused
from goe2mqtt.mqtt.families import Family, LiveFamily, SendingFamily, Taken
from goe2mqtt.mqtt.owed import Owed
from goe2mqtt.mqtt.pace import Pace
from goe2mqtt.mqtt.packing import Packing, same, unpack
from goe2mqtt.mqtt.vouches import Vouches

log = structlog.get_logger()


class RetainedStore:
    def __init__(
        self,
        on_refused: Callable[[PublishRefused], None],
        packing: Packing | None = None,
        pace: Pace | None = None,
        ceiling: Pace | None = None,
    ) -> None:
        self._on_refused = on_refused
        self.packing = Packing() if packing is None else packing
        self.pace = Pace(0.0) if pace is None else pace  # of bulk: no limit unless told
        self.ceiling = Pace(0.0) if ceiling is None else ceiling  # of every publish here
        # What the broker should hold, in the order it last changed (b"": clear it):
        # topic -> payload, and family key -> family.
        self.retained: dict[str, bytes | Family] = {}
        # A family's members that changed on their own, topic -> payload, until sent (a
        # live family's: the family, which builds the payload when it is taken).
        self._loose: dict[str, bytes | LiveFamily] = {}
        self._sending: SendingFamily | None = None
        # Topics whose newest value the broker has not acknowledged yet: changes in the
        # order they last changed, then what is only sent again (mqtt/owed.py).
        self._dirty = Owed()
        self._vouches = Vouches()  # a charger's "online" goes after its states (mqtt/vouches.py)
        self._dirty_added = asyncio.Event()
        self._repaced = asyncio.Event()  # the ceiling's rate changed: a held sender looks again
        self._order = OrderBarrier()  # the changes the broker has not acknowledged yet
        # Topics on their way -> when each was taken (a family's: its SendingFamily's).
        self._took = 0
        self._taken_at: dict[str, int] = {}
        self.resent = asyncio.Event()  # set once every re-send owed was taken
        self.resent.set()

    @property
    def backlog(self) -> int:
        """Topics waiting for the broker (each counts once, however often it changed)."""
        return self._publishes(self._dirty)

    @property
    def changes_owed(self) -> int:
        """Publishes owed as changes, the family on its way included: what goes before
        anything stored now (a clean stop's offlines), re-sends not counted."""
        return self._publishes(self._dirty.changes())

    def _publishes(self, names: Iterable[str]) -> int:
        count = sum(getattr(self.retained.get(name), "size", 1) for name in names)  # family
        sending = self._sending
        return count + (0 if sending is None else sending.size - sending.taken)

    def put(self, topic: str, payload: bytes, vouches: Iterable[str] = ()) -> None:
        """Owe ``payload`` to the broker if it differs from what we last gave it;
        ``vouches``: the families it says are there (mqtt/vouches.py)."""
        old = self.retained.get(topic)
        if not isinstance(old, bytes) or not same(old, payload):
            self.store(topic, payload, vouches)

    def store(self, topic: str, data: bytes, vouches: Iterable[str] = ()) -> None:
        """Keep ``data`` as the topic's retained value and owe it to the broker; a
        family it ``vouches`` for still owed goes first (mqtt/vouches.py).

        Re-inserted at the end: a republish goes out in the order things last changed,
        so "online" comes after the states and configs it vouches for.
        """
        self._vouches.stored(topic, vouches)
        self._loose.pop(topic, None)  # a family's member until now: this is newer
        self.retained.pop(topic, None)
        self.retained[topic] = data
        self._changed(topic)
        self._kept(topic, data)

    def _kept(self, topic: str, data: bytes) -> None:
        packing = self.packing
        packing.stored(topic, data)
        if packing.due():
            packing.sweep(self.retained)

    def put_family(self, family: Family) -> None:
        """Keep ``family`` in place of the one with its key, owing what differs: all of
        it when new (then last in the order), else the members whose payload changed. A
        member it no longer has keeps its last payload as a topic of its own (the caller
        clears it)."""
        key = family.key
        old = self.retained.get(key)
        if old is None or isinstance(old, bytes):
            for topic in family.topics():  # a member now, not a topic of its own
                self._loose.pop(topic, None)
                if isinstance(self.retained.get(topic), bytes):
                    del self.retained[topic]
            self.retained[key] = family
            self._changed(key)
            return
        if old == family:
            self.retained[key] = family  # builds the same: nothing owed, order kept
            return
        before, after = dict(old.members()), dict(family.members())
        # Owed whole, not taken yet: built anew when taken (and, as a change, at once).
        whole = key in self._dirty
        for topic, payload in before.items():
            if topic not in after:
                loose = self._loose.pop(topic, None)
                kept = loose if isinstance(loose, bytes) else payload
                self.retained[topic] = kept
                self._kept(topic, kept)
                if whole:
                    self._mark(topic, None)  # the family sent whole no longer covers it
        changed = [topic for topic, payload in after.items() if before.get(topic) != payload]
        # In place: sent again, it goes where it first went (before the "online" that
        # vouches for it), and every member is built as it is then, the newest.
        self.retained[key] = family
        for topic in changed:
            if isinstance(self.retained.get(topic), bytes):
                del self.retained[topic]  # a member again
            if topic in self._loose or topic in self._dirty:
                # Owed loose, or cleared as a topic of its own: the family's newest now.
                self._loose[topic] = after[topic]
        if whole and self._dirty.is_change(key):
            self._changed_in_place(key)
            return
        # Owed whole only again (a re-send): the changed members go now, as changes.
        for topic in changed:
            self._loose[topic] = after[topic]
            self._changed(topic)

    def put_member(self, family: LiveFamily, topic: str) -> None:
        """A member of a live family changed: owe it, built when it is taken for sending
        (the family's newest then). A family not kept yet is kept and owed whole."""
        key = family.key
        if self.retained.get(key) is not family:
            self.put_family(family)
            return
        if isinstance(self.retained.get(topic), bytes):
            del self.retained[topic]  # cleared as a topic of its own: a member again
            if topic in self._dirty:
                self._loose[topic] = family  # the clear not sent yet: the member instead
        if self._dirty.is_change(key):  # owed whole, not taken yet: built anew when taken
            self._changed_in_place(key)
            return
        # Owed whole by a re-send, or not at all: the member goes now, as a change (the
        # re-send builds it again, the newest then).
        self._loose[topic] = family
        self._changed(topic)

    def _changed(self, name: str) -> None:
        self._mark(name, self._order.change(name))

    def _changed_in_place(self, key: str) -> None:
        """A family owed whole as a change changed again: it keeps its place, built when
        taken (the newest then), so it never goes behind what vouches for it; taken
        sooner, the barrier (settled()) can only be passed sooner."""
        self._dirty.changed_again(key, self._order.change(key))

    def _current(self, topic: str) -> bytes | None:
        """What the topic is owed now, if it is a topic of its own or a loose member."""
        value = self.retained.get(topic)
        if isinstance(value, bytes):
            return value
        loose = self._loose.get(topic)
        return loose if loose is None or isinstance(loose, bytes) else loose.member(topic)

    def owe_everything(self) -> None:
        """Send everything retained again (a reconnect, Home Assistant restarted), after
        every change, made before or meanwhile. What is owed keeps its place (a re-send
        under way goes on); the rest is added after it. Begun anew at every birth,
        births faster than a re-send held back every later change, and every command's
        result, for as long as they came."""
        dirty, added = self._dirty, False
        # Loose members go again too: a barrier may wait for their acknowledgement.
        for name in (*self.retained, *self._loose):
            added = dirty.again(name) or added
        if added:
            self.resent.clear()
        self._dirty_added.set()

    def ours(self, topic: str, key: str) -> bytes | None:
        """What we hold for ``topic`` now, None if nothing (``key``: the live family that
        may have it as a member, or the topic itself)."""
        value = self.retained.get(topic)
        if isinstance(value, bytes):
            return unpack(value) or None
        loose = self._loose.get(topic)
        if isinstance(loose, bytes):
            return loose or None
        family = loose if loose is not None else self.retained.get(key)
        member = getattr(family, "member", None)
        return None if member is None else member(topic)

    def owes(self, topic: str, key: str) -> bool:
        """Whether the topic (or its family, whole) waits to be sent."""
        return topic in self._dirty or key in self._dirty

    def owe_again(self, topic: str, key: str) -> None:
        """Send what we hold for ``topic`` again (someone else wrote there), after every
        change; a live family's member is built when taken, the newest then."""
        if self.owes(topic, key):
            return
        if not isinstance(self.retained.get(topic), bytes) and topic not in self._loose:
            family = self.retained.get(key)
            if getattr(family, "member", None) is None:
                return  # not ours
            self._loose[topic] = family  # type: ignore[assignment]
        self._again(topic)

    def _again(self, name: str) -> None:
        if self._dirty.again(name):
            self.resent.clear()
            self._dirty_added.set()

    def _mark(self, topic: str, change: int | None, taken: int | None = None) -> None:
        """Owe a topic: as a change if it is one, or a barrier waits for it (sent but not
        acknowledged, then lost); else with the re-sends. ``taken``: when it was taken
        for sending; it did not arrive, and goes back where it was (mqtt/owed.py)."""
        dirty = self._dirty
        as_change = change is not None or topic in self._order or dirty.is_change(topic)
        if taken is not None:
            dirty.back(topic, taken, change=as_change)
        elif as_change:
            dirty.change(topic, change)
        else:
            dirty.again(topic)
        if not as_change:
            self.resent.clear()
        elif not dirty.resending:
            self.resent.set()  # the re-send's last topic became a change
        self._dirty_added.set()

    # --- the order barrier ---------------------------------------------------------------

    def barrier(self) -> int:
        """Every change made so far (for settled())."""
        return self._order.changes

    async def settled(self, barrier: int) -> None:
        """Wait until the broker acknowledged every change up to ``barrier``, or a newer
        value of its topic (or refused it): across reconnects, for as long as it takes."""
        await self._order.settled(barrier)

    def _acknowledged(self, name: str) -> None:
        """The value taken for sending reached the broker (or was refused for good)."""
        if name not in self._dirty:
            self._loose.pop(name, None)  # sent: the family builds it from now on
        self._order.acknowledged(name, self._dirty.since(name))

    def _delivered(self, topic: str, sending: SendingFamily | None) -> None:
        """A publish taken for sending was acknowledged (or refused for good)."""
        if sending is None:
            self._taken_at.pop(topic, None)
            self._acknowledged(topic)
            return
        sending.pending -= 1
        if not sending.dropped and not sending.pending and sending.ahead is None:
            self._acknowledged(sending.key)  # the whole family is out

    def _undelivered(self, topic: str, data: bytes, sending: SendingFamily | None) -> None:
        """A publish taken for sending is not known to have arrived: still owed."""
        if sending is None:
            taken = self._taken_at.pop(topic, self._took)
            current = self._current(topic)  # packed meanwhile, perhaps
            if current is not None and same(current, data):
                self._lost(topic, taken)
            return
        if not sending.dropped:
            if self._sending is sending:
                self._sending = None
            sending.dropped = True
            if sending.key in self.retained:
                self._lost(sending.key, sending.order)

    def _lost(self, name: str, taken: int) -> None:
        """Owe again, where it was taken, what did not arrive. A re-send (a birth) begun
        while it was on its way owed it last, at the bulk pace: a barrier that waits for
        it goes back with the changes, or a command's result waited for the re-send."""
        dirty = self._dirty
        if name in dirty and (dirty.is_change(name) or name not in self._order):
            return
        if name in dirty:
            dirty.pull(name)
        self._mark(name, None, taken)

    # --- sending ---------------------------------------------------------------------------

    def _owes(self) -> bool:
        return bool(self._dirty) or self._sending is not None

    def _bulk(self) -> int:
        """How many bulk publishes (mqtt/pace.py) the next _take() begins: a family sent
        again, or a new family that is not live (discovery configs), its size; a topic
        only sent again, 1; a change, 0. A live family's first states are a change: a
        fleet of 10 000 chargers' 1.15 million held every command's result (which waits
        for the states before it) ten minutes at the default rate. With discovery they
        go between their charger's configs, which the pace spaces."""
        if self._sending is not None:
            return 0  # counted when the family began
        head = self._vouches.peek(self._dirty)  # a family before what vouches for it
        if head is None:
            return 0
        name, change = head
        value = self.retained.get(name)
        if value is None or isinstance(value, bytes):
            return 0 if change else 1
        if change and getattr(value, "member", None) is not None:
            return 0
        return value.size

    def _take(self) -> Taken | None:
        """The next topic owed and its payload (built now for a family's member); None
        when nothing is, or when bulk comes after a name passed over (nothing to send):
        the sender pays for it first (_bulk()) and asks again, or it went unpaced."""
        passed = False
        while True:
            sending = self._sending
            if sending is not None:
                item = sending.ahead
                assert item is not None
                sending.ahead = next(sending.members, None)
                if sending.ahead is None:
                    self._sending = None
                sending.taken += 1
                sending.pending += 1
                return item[0], item[1], sending
            if passed and self._bulk():
                return None
            name = self._vouches.take(self._dirty)
            if name is None:
                return None
            if not self._dirty.resending:
                self.resent.set()
            self._took += 1
            value = self.retained.get(name)
            if value is None or isinstance(value, bytes):
                data = self._current(name)
                if data is None and self._loose.get(name) is not None:
                    self._acknowledged(name)  # the live family has it no more: nothing
                    passed = True
                    continue
                self._taken_at[name] = self._took
                return name, data or b"", None
            sending = SendingFamily(value, self._took)  # a family owed whole
            if sending.ahead is None:
                self._acknowledged(name)  # no members: nothing to send
                passed = True
            else:
                self._sending = sending

    async def send(
        self, client: aiomqtt.Client, ack_timeout: float, window: int = SEND_WINDOW
    ) -> None:
        """Drain the owed topics while connected, ``window`` at most awaiting their
        PUBACK; raises BrokerStalled or MqttError."""
        await sender.send(self, client, ack_timeout, window)

    async def flush(self, sending: asyncio.Task[None], *, within: float) -> None:
        """Let ``sending`` (send()'s task, its publishes in flight) drain the changes
        still owed (on a clean stop), for ``within`` seconds at most; then end it. The
        bridge's offline, after them, must go out (no will follows a clean disconnect).
        One at a time, hundreds owed far away took all the time."""
        await sender.flush(self, sending, within=within)
