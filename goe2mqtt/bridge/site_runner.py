"""One site on the broker: meter readings in, decisions at interval, writes through the
command path, the state and the site commands out.

Every write of the site goes to the command desk as a command from the site (service
``set``, id ``site:{site}:{n}``): validated, journaled, run in the charger's queue
and read back like a user's, with its result on the charger's result topic. A user's
command that sets the current of a charger the site manages is refused at the desk
(mode not ``off``), and so is one that would start a charger the site has paused (one
that stops it makes the site forget its pause: the user's wish); the site's own
commands answer on ``{base}/site/{site}/cmd/result``,
and what they set is remembered across restarts (site_memory.py).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable, Mapping
from typing import Protocol

import structlog

from goe2mqtt.bridge.site_memory import SiteMemory
from goe2mqtt.charger.loop import Charger
from goe2mqtt.commands.payloads import CommandError, command_result, result_json
from goe2mqtt.commands.services import parse_command
from goe2mqtt.config.site import SiteSettings
from goe2mqtt.mqtt.session import InboundMessage
from goe2mqtt.site.commands import SiteCommandError, parse_site_command, sets_current
from goe2mqtt.site.controller import SiteController, Write
from goe2mqtt.site.meter import MeterInvalid, parse_meter
from goe2mqtt.site.seen import seen_from_status
from goe2mqtt.util.aio import wait_until_set

log = structlog.get_logger()

FORCE_OFF = 1  # frc: stop
CAR_CHARGING, CAR_COMPLETE = 2, 4  # what the charger's button (wallbox_control) stops, starts
MIN_GAP = 1.0  # s between decisions: a meter that publishes ten times a second
STATE_REFRESH = 60.0  # s: the state (meter age) is published at least this often
SAY_AGAIN = 3600.0  # s: a refused reading's reason is logged again at most this often
SAID_KEPT = 64  # reasons remembered for that (a hostile stream's are all different)


class CommandEntry(Protocol):
    """The command path's public entry (bridge.desk.CommandDesk.accept)."""

    def accept(self, charger: str, service: str, message: InboundMessage) -> None: ...


class Publisher(Protocol):
    async def publish_retained(self, topic: str, payload: str | bytes) -> None: ...

    async def publish_once(self, topic: str, payload: str | bytes) -> None: ...


def force_effect(service: str, payload: bytes, car: int | None) -> str | None:
    """What a charger command does to the force state: "start" (frc 0 or 2: the charger
    may charge), "stop" (frc 1) or None (it does not touch it, or it cannot be read -
    the command path refuses that for what it is). ``car``: the charger's car state,
    which decides what the button (wallbox_control) does."""
    if service not in ("start_charging", "stop_charging", "set", "force_state",
                       "wallbox_control"):  # fmt: skip
        return None
    try:
        arguments = parse_command(service, payload).arguments
    except CommandError:
        return None
    if service == "start_charging":
        return "start"
    if service == "stop_charging":
        return "stop"
    if service == "wallbox_control":
        return "start" if car == CAR_COMPLETE else "stop" if car == CAR_CHARGING else None
    value = arguments.get("frc" if service == "set" else "value", ...)
    if value is ...:
        return None
    off = value == FORCE_OFF and not isinstance(value, bool)
    off = off or (isinstance(value, str) and value.strip().lower() in ("off", "1"))
    return "stop" if off else "start"


def site_topic(base: str, site: str, leaf: str) -> str:
    return f"{base}/site/{site}/{leaf}"


class SiteRunner:
    """One site: its controller, fed and carried out."""

    def __init__(self, settings: SiteSettings, *, base: str, memory: SiteMemory | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.settings = settings
        self.controller = SiteController(settings)
        self._memory = memory
        if memory is not None:
            memory.restore(settings, self.controller)
        self._base = base
        self._clock = clock
        self._wake = asyncio.Event()
        self._last = -float("inf")
        self._published = -float("inf")
        self._writes = 0
        self._fallback_said: str | None = None
        self._retained_said = False
        self._invalid_said: dict[str, float] = {}  # reason -> when it was logged
        self._fallback_loud = True  # the fallback now was logged as a warning

    @property
    def name(self) -> str:
        return self.settings.name

    @property
    def state_topic(self) -> str:
        return site_topic(self._base, self.name, "state")

    @property
    def write_topic(self) -> str:
        """What the site's writes carry as their topic: never published, and one level
        deeper than any command the broker routes to the desk ({base}/{charger}/cmd/x),
        so no user's command can pass for the site's."""
        return site_topic(self._base, self.name, "write/set")

    @property
    def lower_topic(self) -> str:
        """The topic of a write that only lowers the draw (Write.lowers): the desk
        journals it as such, and runs it after a restart (a raise it does not run)."""
        return site_topic(self._base, self.name, "write/lower")

    def resume_dropped(self, charger: str, call: Mapping[str, object]) -> None:
        """The last run's resume of this charger, journaled but not run before it ended
        (the desk does not run it after the restart: decided on an old reading). That run
        forgot the pause once the resume was journaled (sites.json): the charger, still
        stopped, is the site's paused one again, resumed when there is room (at the
        first decision in mode off). Forgotten, it stayed stopped for good."""
        frc = call.get("frc")
        if set(call) != {"frc"} or not isinstance(frc, int) or isinstance(frc, bool):
            return
        if self.controller.managed[charger].paused:
            return  # paused by sites.json or a pause journaled after it: that one's frc
        if self.controller.restore_paused(charger, frc):
            log.info("site_pause_restored", site=self.name, chargers=[charger],
                     reason="its resume was not run before the restart")  # fmt: skip
            if self._memory is not None:
                self._memory.remember_paused(self.name, self.controller.paused())

    def manages(self, charger: str) -> bool:
        return charger in self.controller.managed and self.controller.mode != "off"

    def refusal(self, charger: str, service: str, payload: bytes) -> str | None:
        """Why a user's command to a charger is refused for this site (None: it is not).
        One that would start a charger the site has paused is refused (the site would
        pause it again within seconds); one that stops it is the user's wish: the site
        forgets its pause, so its resume does not start the charger again."""
        if not self.manages(charger):
            return None
        if sets_current(service, payload):
            return (
                f"site {self.name} manages {charger}'s current (mode"
                f" {self.controller.mode}): use cmd/set_mode off on the site, or its"
                " max_current in the config"
            )
        managed = self.controller.managed[charger]
        if not managed.paused:
            return None
        effect = force_effect(service, payload, managed.seen.car)
        if effect == "start":
            return (
                f"site {self.name} has paused {charger} ({managed.why}; mode"
                f" {self.controller.mode}): it resumes it when there is room for its"
                " minimum; to start it now, use cmd/set_mode off on the site"
            )
        if effect == "stop":
            self.controller.forget_pause(charger)
            log.info("site_pause_left_to_user", site=self.name, charger=charger,
                     service=service)  # fmt: skip
        return None

    def meter_message(self, payload: bytes, *, retained: bool = False) -> None:
        """A meter reading. One the broker kept (retained: sent at each subscribe, a
        reconnect's too) is old by definition - how old, nobody knows: it is not taken
        for a measurement, and the site waits for a live one (the meter's timeout and
        fallback apply meanwhile). A live publish that the meter retains arrives
        without the flag (the subscription does not keep it as published)."""
        if retained:
            if not self._retained_said:
                log.info("site_meter_retained", site=self.name,
                         effect="ignored: waiting for a live reading")  # fmt: skip
                self._retained_said = True
            return
        now = self._clock()
        exports = self.settings.meter_exports or self.controller.mode == "pv"
        try:
            self.controller.meter(parse_meter(payload, exports=exports), now)
        except MeterInvalid as exc:
            reason = str(exc)
            if self._news(reason, now):
                log.warning("site_meter_invalid", site=self.name, reason=reason,
                            effect="fallback until valid readings return")  # fmt: skip
            self.controller.meter_invalid(reason, now)
        self._wake.set()

    def _news(self, reason: str, now: float) -> bool:
        """Whether a refused reading's reason is news for the log: once per reason an
        hour, so a flaky meter (a bad reading between good ones) is not a line each."""
        said = self._invalid_said
        if now - said.get(reason, -SAY_AGAIN) < SAY_AGAIN:
            return False
        said.pop(reason, None)
        said[reason] = now
        if len(said) > SAID_KEPT:
            del said[next(iter(said))]  # the oldest
        return True

    async def run(self, chargers: Mapping[str, Charger], desk: CommandEntry,
                  mqtt: Publisher) -> None:  # fmt: skip
        """Decide every interval, and at once (at most once a second) on a reading."""
        while True:
            due = self._last + self.settings.interval - self._clock()
            if due > 0:
                await wait_until_set(self._wake, due)
            self._wake.clear()
            gap = self._last + MIN_GAP - self._clock()
            if gap > 0:
                await asyncio.sleep(gap)
            await self.decide(chargers, desk, mqtt)

    async def decide(self, chargers: Mapping[str, Charger], desk: CommandEntry,
                     mqtt: Publisher) -> None:  # fmt: skip
        now = self._last = self._clock()
        for name in self.controller.managed:
            charger = chargers.get(name)
            if charger is not None:
                seen = seen_from_status(charger.status, online=charger.availability.online)
                self.controller.see(name, seen)
        was_paused = self.controller.paused()
        decision = self.controller.decide(now)
        self._say_fallback(now)
        if self._memory is not None:
            # Written ahead: a pause is on disk before its write is journaled, a resume
            # leaves it only after. A kill -9 between the two then leaves a charger that
            # the next process resumes (or pauses again, should it charge), never one
            # paused by a site that no longer knows it: that one stayed stopped for good.
            self._memory.remember_paused(self.name, {**was_paused, **self.controller.paused()})
        for write in decision.writes:
            self._send(write, desk)
        if self._memory is not None:
            self._memory.remember_paused(self.name, self.controller.paused())
            self._memory.save_owed()  # a disk that refused: tried again every decision
        if decision.changed or now - self._published >= STATE_REFRESH:
            self._published = now
            state = json.dumps(self.controller.state(now), separators=(",", ":"))
            await mqtt.publish_retained(self.state_topic, state)

    def _say_fallback(self, now: float) -> None:
        """site_fallback when one begins, site_fallback_ended when it ends; a flaky meter
        begins one at each bad reading: the same kind (its numbers aside) is a warning
        once an hour, then debug lines, its end too."""
        reason = self.controller.fallback
        if (reason is None) != (self._fallback_said is None):
            if reason is not None:
                kind = re.sub(r"[0-9.]+", "N", reason)
                self._fallback_loud = self._news(f"fallback: {kind}", now)
                say = log.warning if self._fallback_loud else log.debug
                say("site_fallback", site=self.name, reason=reason,
                    fallback_current=self.settings.fallback_current)  # fmt: skip
            else:
                say = log.info if self._fallback_loud else log.debug
                say("site_fallback_ended", site=self.name)
        self._fallback_said = reason

    def _send(self, write: Write, desk: CommandEntry) -> None:
        self._writes += 1
        payload = {**write.call, "id": f"site:{self.name}:{self._writes}"}
        log.info("site_write", site=self.name, charger=write.charger, call=write.call,
                 why=write.why)  # fmt: skip
        message = InboundMessage(
            topic=self.lower_topic if write.lowers else self.write_topic,
            payload=json.dumps(payload).encode(),
            retain=False,
        )
        desk.accept(write.charger, "set", message)

    async def command(self, service: str, payload: bytes, mqtt: Publisher) -> None:
        """A site command; its result on the site's result topic."""
        request_id = None
        try:
            command = parse_site_command(service, payload)
            request_id = command.request_id
            args = command.arguments
            if service == "set_mode":
                error = self.controller.set_mode(args["mode"])
            elif service == "set_fuse":
                error = self.controller.set_fuse(float(args["fuse"]))
            else:
                error = self.controller.set_priority(args["charger"], args["priority"])
            if error is not None:
                raise SiteCommandError(error)
        except SiteCommandError as exc:
            result = command_result(service, ok=False, request_id=request_id, error=str(exc))
        else:
            log.info("site_command", site=self.name, service=service, arguments=args)
            if self._memory is not None:
                self._memory.learn(self.settings, service, args)
            result = command_result(service, ok=True, request_id=request_id, applied=[args])
            # Decide with the new setting now, and say it even if no charger's share
            # moves (mode off: the fuse set reached the state only at the next refresh).
            self._published = -float("inf")
            self._wake.set()
        topic = site_topic(self._base, self.name, "cmd/result")
        await mqtt.publish_once(topic, result_json(result))
