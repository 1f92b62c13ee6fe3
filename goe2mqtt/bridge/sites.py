"""The sites on the broker: each configured site's runner (bridge/site_runner.py), and
what the bridge asks of them all. The site code (controller, meter, sharing) is
imported only when a site is configured.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from goe2mqtt.bridge.site_memory import SiteMemory
from goe2mqtt.config.site import SiteSettings
from goe2mqtt.mqtt.session import InboundMessage, Subscription

if TYPE_CHECKING:
    from goe2mqtt.bridge.site_runner import Publisher, SiteRunner


class Sites:
    """Every configured site, and what the bridge asks of them."""

    def __init__(self, sites: Sequence[SiteSettings], *, base: str,
                 memory: SiteMemory | None = None) -> None:  # fmt: skip
        self._base = base
        self.runners: dict[str, SiteRunner] = {}
        if sites:
            from goe2mqtt.bridge.site_runner import SiteRunner

            self.runners = {s.name: SiteRunner(s, base=base, memory=memory) for s in sites}
        if memory is not None:
            memory.keep_only(self.runners)
        self._by_meter: dict[str, list[SiteRunner]] = {}
        for runner in self.runners.values():
            self._by_meter.setdefault(runner.settings.meter_topic, []).append(runner)

    def subscriptions(self) -> list[Subscription]:
        if not self.runners:
            return []
        return [
            *(Subscription(topic, qos=0) for topic in self._by_meter),
            Subscription(f"{self._base}/site/+/cmd/+", qos=1, no_local=True),
        ]

    def own_write(self, message: InboundMessage) -> bool:
        """A site's own write (its topic is never published: no user's command has it)."""
        return any(message.topic in (runner.write_topic, runner.lower_topic)
                   for runner in self.runners.values())  # fmt: skip

    def own_lowering(self, message: InboundMessage) -> bool:
        """A site's own write that only lowers the draw (run after a restart)."""
        return any(message.topic == runner.lower_topic for runner in self.runners.values())

    def write_dropped(self, charger: str, call: Mapping[str, Any]) -> None:
        """A site's write the last run journaled, not run after the restart (the desk's
        recovery): a resume among them leaves its charger paused by the site."""
        for runner in self.runners.values():
            if charger in runner.controller.managed:
                runner.resume_dropped(charger, call)

    def refusal(self, charger: str, service: str, message: InboundMessage) -> str | None:
        """Why a charger command is refused for a site's sake (None: it is not)."""
        if self.own_write(message):
            return None  # the site's own write
        for runner in self.runners.values():
            refused = runner.refusal(charger, service, message.payload)
            if refused is not None:
                return refused
        return None

    def message(self, message: InboundMessage, mqtt: Publisher) -> asyncio.Task[None] | None:
        """Take a meter reading, or start a site command (its task)."""
        runners = self._by_meter.get(message.topic)
        if runners is not None:
            for runner in runners:
                runner.meter_message(message.payload, retained=message.retain)
        prefix = f"{self._base}/site/"
        if not message.topic.startswith(prefix):
            return None
        parts = message.topic[len(prefix) :].split("/")
        if len(parts) != 3 or parts[1] != "cmd" or parts[2] == "result" or message.retain:
            return None
        site = self.runners.get(parts[0])
        if site is None:
            return None
        return asyncio.create_task(site.command(parts[2], message.payload, mqtt))

    def is_meter_topic(self, topic: str) -> bool:
        return topic in self._by_meter

    def is_site_topic(self, topic: str) -> bool:
        # Without sites the name "site" is a charger's like any (config/settings.py
        # reserves it only while sites are set): its commands are the desk's.
        if not self.runners:
            return False
        return topic in self._by_meter or topic.startswith(f"{self._base}/site/")
