"""The retained topics the bridge looks after besides commands: Home Assistant's birth,
and what earlier runs left behind.

Home Assistant coming online gets every retained config and state again (once for a
burst of births, then BIRTH_SPACING after the last re-send ended: the broker has them); a
charger or a site no longer configured, or a discovery config no longer announced, is
removed so that it does not look current to every new subscriber (for a charger, what is
really retained under it: read first, so that anyone leaving fake availability topics
costs a clear each, not one per catalogue topic);
a config of another installation that maps to our node id is left alone, and said once.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
from collections.abc import Callable, Coroutine, Sequence, Set
from typing import Any

import aiomqtt
import structlog

from goe2mqtt.bridge.stale_bridges import stale_bridge
from goe2mqtt.config.site import SiteSettings
from goe2mqtt.homeassistant.bridge_device import bridge_node_id
from goe2mqtt.homeassistant.discovery import ORIGIN, ExpectedDiscovery, discovery_filter
from goe2mqtt.homeassistant.site_device import site_discovery_topics
from goe2mqtt.mqtt.look_back import read_retained_together
from goe2mqtt.mqtt.session import InboundMessage, MqttSession, Subscription
from goe2mqtt.mqtt.topics import ONLINE, Topics

log = structlog.get_logger()

BIRTH_DELAY = (0.5, 2.0)  # spread republishing after HA restarts, as HA recommends
# From the end of one re-send to the next at least: each costs a thousand chargers 30 s of
# sending, and a flood of births (anyone may publish homeassistant/status) kept the bridge
# re-sending for as long as it lasted.
BIRTH_SPACING = 30.0
# Births that keep coming (anyone who may publish {prefix}/status can send them; one tiny
# message cost a thousand chargers 25 CPU-seconds of re-sending, every 30 s): the spacing
# doubles after each re-send, up to this; a birth after a quiet of twice the spacing
# starts it anew (Home Assistant restarting now and then).
BIRTH_SPACING_MAX = 900.0
# Chargers no longer configured whose retained topics are read in one go: ~135 topics
# each at most, a few thousand messages a read.
STALE_BATCH = 50

Spawn = Callable[[Coroutine[Any, Any, None]], None]


def housekeeping_subscriptions(topics: Topics, prefix: str | None) -> list[Subscription]:
    """What Housekeeping takes; retained only where it looks for what earlier runs left."""
    wanted = [
        Subscription(topics.availability_filter, qos=0, retained_only=True),
        Subscription(site_state_filter(topics), qos=0, retained_only=True),
    ]
    if prefix is not None:
        wanted += [
            Subscription(f"{prefix}/status", qos=1),
            Subscription(discovery_filter(prefix, topics.base), qos=0, retained_only=True),
        ]
    return wanted


class Housekeeping:
    """Takes the messages of the topics it subscribes; spawns what they call for."""

    def __init__(
        self,
        mqtt: MqttSession,
        topics: Topics,
        *,
        prefix: str | None,
        configured: Set[str],
        sites: Sequence[SiteSettings] = (),
        spawn: Spawn,
        birth_delay: tuple[float, float] = BIRTH_DELAY,
        birth_spacing: float = BIRTH_SPACING,
        shards: int | None = None,
    ) -> None:
        self._mqtt = mqtt
        self._topics = topics
        self._shards = shards  # shard.count: whose bridge topics are this layout's
        self._prefix = prefix
        self._configured = configured
        self._sites = frozenset(site.name for site in sites)
        self._spawn = spawn
        self._birth_delay = birth_delay
        self._birth_spacing = birth_spacing
        self._birth_pending = False  # a task re-sends for the births so far
        self._births = 0  # births not re-sent for yet
        self._resent_at: float | None = None  # loop time the last re-send ended
        self._spacing = birth_spacing  # from the end of the last re-send to the next
        self._foreign_discovery_seen = 0
        self._stale: dict[str, None] = {}  # chargers no longer configured, to clear
        self._stale_pending = False  # a task clears them
        self._stale_configs: dict[str, None] = {}  # discovery configs no longer announced
        self._configs_pending = False  # a task clears them
        # The configs the chargers and sites announce (or may): the rest under our node
        # is stale.
        self._expected_chargers = ExpectedDiscovery(prefix or "", topics.base, configured)
        self._expected_sites: set[str] = set()
        if prefix is not None:
            self._expected_sites = site_discovery_topics(prefix=prefix, topics=topics, sites=sites)

    def take(self, message: InboundMessage) -> bool:
        """Whether the message was one of these topics' (then it is dealt with)."""
        earlier = stale_bridge(self._topics, self._shards, message.topic)
        if earlier is not None:
            if message.payload == ONLINE.encode():
                log.warning(
                    "another_bridge_layout_online",
                    topic=message.topic,
                    hint="a goe2mqtt with another shard layout says it is online on this"
                    " base_topic: stop it (or, if it is gone, clear its retained"
                    " availability and info: README 'Fleets: shards')",
                )
            elif message.payload:
                self._spawn(self._remove_stale_bridge(earlier))
            return True
        site = site_of_state(self._topics, message.topic)
        if site is not None:
            if message.payload and site not in self._sites:
                self._spawn(self._remove_stale_site_state(site, message.topic))
            return True
        prefix = self._prefix
        if prefix is not None and message.topic == f"{prefix}/status":
            if message.payload.strip().lower() == b"online":
                self._births += 1
                if not self._birth_pending:
                    self._birth_pending = True  # HA births in a row make one republish
                    self._spawn(self._republish_after_birth())
            return True
        if prefix is not None and message.topic.startswith(f"{prefix}/"):
            if message.payload and not self._expected(message.topic):
                if points_under(message.payload, self._topics.base):
                    self._stale_configs[message.topic] = None
                    if not self._configs_pending:
                        self._configs_pending = True
                        self._spawn(self._remove_stale_configs())
                elif self._foreign_discovery_seen < 1:
                    # Another installation whose base topic makes the same node id
                    # (inst/a and inst_a): its configs are not ours to remove.
                    self._foreign_discovery_seen += 1
                    log.warning(
                        "discovery_of_another_installation",
                        topic=message.topic,
                        hint="another goe2mqtt's base_topic maps to the same discovery"
                        f" node id as {self._topics.base!r}: give one of them another"
                        " base_topic, or the two may overwrite each other's entities",
                    )
            return True
        removed = self._topics.charger_of_availability(message.topic)
        if removed is not None:
            if message.payload and removed not in self._configured:
                self._stale[removed] = None
                if not self._stale_pending:
                    self._stale_pending = True
                    self._spawn(self._remove_stale_chargers())
            return True
        return False

    def _expected(self, topic: str) -> bool:
        return topic in self._expected_chargers or topic in self._expected_sites

    async def _republish_after_birth(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._births:
                delay = random.uniform(*self._birth_delay)
                if self._resent_at is not None:  # spaced from the end of the last
                    if loop.time() - self._resent_at > 2 * self._spacing:
                        self._spacing = self._birth_spacing  # quiet for long: anew
                    delay = max(delay, self._resent_at + self._spacing - loop.time())
                await asyncio.sleep(delay)
                self._births = 0  # the births so far: this re-send is theirs
                log.info("home_assistant_online", action="republish")
                await self._mqtt.republish_retained()
                await self._mqtt.resent()
                self._resent_at = loop.time()
                most = max(self._birth_spacing, BIRTH_SPACING_MAX)
                self._spacing = min(2 * self._spacing, most)
        finally:
            self._birth_pending = False

    async def _remove_stale_chargers(self) -> None:
        """Clear what is retained under chargers no longer configured, STALE_BATCH at a
        time: left behind, their values would look current to every new subscriber."""
        try:
            while self._stale:
                batch = list(itertools.islice(self._stale, STALE_BATCH))
                for charger in batch:
                    del self._stale[charger]
                await self._remove_stale_batch(batch)
        finally:
            self._stale_pending = False

    async def _remove_stale_batch(self, chargers: list[str]) -> None:
        topics = self._topics
        found: set[str] = set()

        def retained(message: InboundMessage) -> None:
            if message.payload:
                found.add(message.topic)

        try:
            filters = [f"{topics.base}/{charger}/+" for charger in chargers]
            await read_retained_together(self._mqtt.options, filters, retained, role="stale")
        except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
            log.warning(
                "stale_chargers_not_read",
                chargers=len(chargers),
                error=str(exc),
                action="their availability cleared; the rest at the next start",
            )
            found = {topics.availability(charger) for charger in chargers}
        bare = []  # an availability and nothing else: a fake one perhaps; one line for all
        for charger in chargers:
            # Only what the bridge publishes for a charger: anything else there is not ours.
            clear = [t for t in topics.charger_retained(charger) if t in found]
            if clear == [topics.availability(charger)]:
                bare.append(charger)
            elif clear:
                log.info("charger_removed", charger=charger, reason="no longer configured",
                         retained=len(clear))  # fmt: skip
            for topic in clear:
                await self._mqtt.clear_retained(topic)
        if bare:
            log.info(
                "stale_availability_removed",
                chargers=len(bare),
                first=bare[0],
                reason="no charger of that name configured, nothing else retained",
            )

    async def _remove_stale_bridge(self, earlier: Topics) -> None:
        log.info("bridge_topics_removed", topics=f"{earlier.bridge}/",
                 reason="a shard layout no longer in use")  # fmt: skip
        await self._mqtt.clear_retained(earlier.bridge_availability)
        await self._mqtt.clear_retained(earlier.bridge_info)
        if self._prefix is not None:  # its device in Home Assistant, whose sensors read those
            await self._remove_stale_bridge_device(self._prefix, earlier)

    async def _remove_stale_bridge_device(self, prefix: str, earlier: Topics) -> None:
        """The earlier bridge's discovery configs: what is retained under its node and
        points under our base topic (another installation's node id may be the same)."""
        found: dict[str, bytes] = {}

        def retained(message: InboundMessage) -> None:
            if message.payload:
                found[message.topic] = message.payload

        node = bridge_node_id(earlier)
        try:
            filters = [f"{prefix}/+/{node}/+/config"]
            await read_retained_together(self._mqtt.options, filters, retained, role="stale")
        except (aiomqtt.MqttError, OSError, TimeoutError) as exc:
            log.warning("stale_bridge_device_not_read", node=node, error=str(exc),
                        action="its configs stay until the next start")  # fmt: skip
            return
        for topic, payload in found.items():
            if points_under(payload, self._topics.base):
                await self._mqtt.clear_retained(topic)

    async def _remove_stale_site_state(self, site: str, topic: str) -> None:
        log.info("site_removed", site=site, reason="no longer configured")
        await self._mqtt.clear_retained(topic)

    async def _remove_stale_configs(self) -> None:
        """Clear the configs no longer announced, once all that is retained has been read:
        one line for them all (a removed charger logged one per entity, 132)."""
        try:
            await self._mqtt.until_looked_back()
            while self._stale_configs:
                configs = list(self._stale_configs)
                self._stale_configs.clear()
                log.info("discovery_removed", configs=len(configs), first=configs[0],
                         reason="charger, site or entity no longer configured")  # fmt: skip
                for topic in configs:
                    await self._mqtt.clear_retained(topic)
        finally:
            self._configs_pending = False


def site_state_filter(topics: Topics) -> str:
    """Every site's retained state ({base}/site/{site}/state); no charger topic matches
    (a charger's topics are {base}/{charger}/{key}, ../session/ended, ../cmd/{service})."""
    return f"{topics.base}/site/+/state"


def site_of_state(topics: Topics, topic: str) -> str | None:
    """The site whose retained state this is, or None for anything else."""
    prefix, suffix = f"{topics.base}/site/", "/state"
    if not (topic.startswith(prefix) and topic.endswith(suffix)):
        return None
    site = topic[len(prefix) : -len(suffix)]
    return None if site == "" or "/" in site else site


def points_under(config: bytes, base: str) -> bool:
    """Whether a retained discovery config is one this installation published: a
    goe2mqtt's (every version names itself in ``origin``) whose state or availability
    topics lie under our base topic. Another tool's config that shares our node id and
    reads topics under our base topic (a user's own sensors under home/garage/...) is
    not ours to remove."""
    try:
        payload = json.loads(config)
    except (ValueError, RecursionError):
        return False
    if not isinstance(payload, dict):
        return False
    origin = payload.get("origin")
    if not isinstance(origin, dict) or origin.get("name") != ORIGIN["name"]:
        return False
    topics = [payload.get("state_topic"), payload.get("availability_topic")]
    availability = payload.get("availability")
    if isinstance(availability, list):
        topics += [a.get("topic") for a in availability if isinstance(a, dict)]
    return any(isinstance(t, str) and t.startswith(f"{base}/") for t in topics)
