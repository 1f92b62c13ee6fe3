"""The session's client: aiomqtt's, with what it does not pass on, and QoS 2 that lasts.

Knows MQTT and nothing of go-e.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable
from typing import Any

import aiomqtt
import structlog
from paho.mqtt.client import (
    MQTT_CLEAN_START_FIRST_ONLY,
    MQTT_ERR_CONN_LOST,
    MQTT_ERR_NO_CONN,
    MQTT_ERR_SUCCESS,
    MQTTMessage,
    mqtt_ms_publish,
    mqtt_ms_queued,
    mqtt_ms_resend_pubrel,
    mqtt_ms_wait_for_puback,
    mqtt_ms_wait_for_pubcomp,
    mqtt_ms_wait_for_pubrec,
)
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from goe2mqtt.mqtt.client import (
    MAX_INBOUND_PACKET,
    SEND_WINDOW,
    MqttOptions,
    PublishRefused,
    _connection,
    publish_size,
    refuse_larger,
)
from goe2mqtt.mqtt.in_flight import InFlight
from goe2mqtt.mqtt.topics import OFFLINE
from goe2mqtt.mqtt.writes import JoinedWriter, usable

log = structlog.get_logger()

# Told a QoS 2 message's packet id: before it leaves, and when the broker took it (PUBREC).
PacketNote = Callable[[int], None]

# Why a publish past the broker's Maximum Packet Size is refused (not the broker's words).
TOO_LARGE = "larger than the broker's maximum packet size"

# A QoS 1 or 2 message of ours the broker has still to answer.
_AWAITING_ANSWER = frozenset(
    {mqtt_ms_wait_for_puback, mqtt_ms_wait_for_pubrec, mqtt_ms_wait_for_pubcomp}
)

# The packet id of the publish just made in this task (set inside aiomqtt's publish).
_LAST_MID: contextvars.ContextVar[int | None] = contextvars.ContextVar("mid", default=None)


class SessionClient(aiomqtt.Client):
    """aiomqtt's client plus what it does not pass on: a PUBACK's, PUBREC's or PUBCOMP's
    reason code (a refused publish raises PublishRefused instead of counting as
    delivered), whether the broker kept our session (``on_new_session`` runs in the
    CONNACK's callback, before any message of the new session can arrive), and QoS 2
    publishes that outlive a connection (publish_once).

    One client serves every connection of a session (aiomqtt 2.5's client is reusable):
    paho keeps a QoS 2 publish in this object until the broker's PUBCOMP, and sends it
    again on the next connection with the same packet id (PUBLISH with DUP, or PUBREL),
    so the broker, which keeps our session, hands it on once. A process that ends in the
    middle resumes with resume_once, from what on_sent and on_taken told: the same
    PUBLISH again under the same packet id, or, once the broker has acknowledged it
    (PUBREC), only our PUBREL; the next process sends either first thing."""

    def __init__(self, *args: Any, on_new_session: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused: dict[int, str] = {}
        # QoS 2 publishes paho holds for us: packet id -> (topic, done when PUBCOMP came,
        # told the packet id when the broker's PUBREC came, before our PUBREL goes out).
        self._once: dict[int, tuple[str, asyncio.Future[None], PacketNote | None]] = {}
        paho = self._client
        # When the broker last sent us a byte. Not paho's _last_bytes_received: paho sets
        # that to "now" whenever it sends a PINGREQ, though nothing was heard, and a
        # frozen broker then looked as if it had just answered (/readyz went back to 200).
        self._heard = time.monotonic()
        # Everything paho writes goes out joined per loop turn (mqtt/writes.py), unless
        # this paho lacks a part the joined writer relies on: then as aiomqtt writes.
        self._writes: JoinedWriter | None = None
        # The largest packet the broker takes (its CONNACK's Maximum Packet Size, MQTT 5):
        # it ends the connection of a client that sends more, and paho would send the
        # same publish again first thing on the next one, for good.
        self._largest_out: int | None = None
        if usable(paho):
            self._writes = JoinedWriter(paho, self._loop)
        else:
            log.warning("mqtt_writes_unjoined", reason="this paho-mqtt lacks a part they use")
        largest = getattr(kwargs.get("properties"), "MaximumPacketSize", None)
        if isinstance(largest, int):  # MQTT 5: what our CONNECT said we take at most
            refuse_larger(paho, largest)
        paho_sock_recv = paho._sock_recv
        paho_loop_read = paho.loop_read
        paho_publish = paho.publish
        paho_handle_pubrec = paho._handle_pubrec
        paho_mid_generate = paho._mid_generate
        aiomqtt_on_publish: Any = paho.on_publish
        aiomqtt_on_connect: Any = paho.on_connect
        v5 = kwargs.get("protocol") == aiomqtt.ProtocolVersion.V5
        # MQTT 5: never more awaiting an answer than the broker's CONNACK allows.
        self._in_flight = InFlight(paho) if v5 else None

        def publish(*args: Any, **kwargs: Any) -> Any:
            info = paho_publish(*args, **kwargs)
            _LAST_MID.set(info.mid)
            return info

        def refused(mid: int, code: ReasonCode) -> None:
            if len(self._refused) > 1000:  # answers nobody looked for: keep it bounded
                self._refused.clear()
            self._refused[mid] = f"{code} (reason code {code.value})"

        def handle_pubrec() -> Any:
            # paho reads a PUBREC's reason code and drops it; a refusal (an ACL's "not
            # authorized") is only told there, the PUBCOMP after it says success.
            packet = bytes(paho._in_packet["packet"])
            mid = int.from_bytes(packet[:2], "big")
            if v5 and len(packet) > 2 and packet[2] >= 0x80:
                refused(mid, ReasonCode(PacketTypes.PUBREC, identifier=packet[2]))
            else:
                once = self._once.get(mid)
                if once is not None and once[2] is not None:
                    try:
                        once[2](mid)  # the broker has it: noted before our PUBREL goes out
                    except Exception:  # raised into paho, it would end the connection
                        log.exception("qos2_taken_not_noted", packet_id=mid)
            return paho_handle_pubrec()

        def mid_generate() -> int:
            # A packet id resumed from an earlier process stays taken until its PUBCOMP
            # (paho would count into it and refuse, or overwrite, the publish).
            for _ in range(65535):
                mid = paho_mid_generate()
                if mid not in paho._out_messages:
                    break
            return mid

        def on_publish(client: Any, userdata: Any, mid: int, code: Any, props: Any) -> None:
            if getattr(code, "is_failure", False):
                refused(mid, code)
            once = self._once.pop(mid, None)
            if once is not None:
                topic, done, _ = once
                reason = self._refused.pop(mid, None)
                if not done.done():
                    if reason is None:
                        done.set_result(None)
                    else:
                        done.set_exception(PublishRefused(topic, reason))
            aiomqtt_on_publish(client, userdata, mid, code, props)

        def on_connect(
            client: Any, userdata: Any, flags: Any, code: Any, props: Any = None
        ) -> None:
            if not getattr(code, "is_failure", False):
                self._largest_out = getattr(props, "MaximumPacketSize", None) if v5 else None
                if not flags.session_present:
                    self._session_lost()  # may turn a PUBREL owed into a PUBLISH
                    on_new_session()
                self._refuse_owed_too_large()
                if self._in_flight is not None:
                    self._in_flight.connected(props)
            aiomqtt_on_connect(client, userdata, flags, code, props)

        def sock_recv(bufsize: int) -> bytes:
            data = paho_sock_recv(bufsize)
            if data:
                self._heard = time.monotonic()
            return data

        def loop_read(max_packets: int = 1) -> Any:
            try:
                return paho_loop_read(max_packets)
            finally:
                if self._writes is not None:
                    self._writes.after_read()

        paho._sock_recv = sock_recv  # type: ignore[method-assign]
        paho.loop_read = loop_read  # type: ignore[method-assign]
        paho.publish = publish  # type: ignore[method-assign]
        paho._handle_pubrec = handle_pubrec  # type: ignore[method-assign]
        paho._mid_generate = mid_generate  # type: ignore[method-assign]
        paho.on_publish = on_publish
        paho.on_connect = on_connect

    def _refuse_owed_too_large(self) -> None:
        """In the CONNACK's callback, before paho resends: a publish it holds past this
        broker's Maximum Packet Size (checked on an earlier connection, or resumed from an
        earlier process) is dropped, refused; sent, it would end every connection."""
        largest, paho = self._largest_out, self._client
        for mid, message in list(paho._out_messages.items()):
            if largest is None or message.state not in (mqtt_ms_publish, mqtt_ms_queued):
                continue  # no limit; or a PUBREL is owed (a few bytes), or it is out
            props = {"properties": message.properties}
            size = publish_size(message.topic, message.payload, message.qos, props)
            if size <= largest:
                continue
            del paho._out_messages[mid]
            log.warning("mqtt_owed_publish_too_large", topic=message.topic, size=size,
                        largest=largest, action="dropped, refused")  # fmt: skip
            once = self._once.pop(mid, None)
            if once is not None and not once[1].done():
                once[1].set_exception(PublishRefused(once[0], f"{TOO_LARGE} ({largest} bytes)"))

    def _session_lost(self) -> None:
        """The broker kept no session: a QoS 2 publish it had acknowledged with PUBREC
        went with it, and a PUBREL would only be answered "done". Sent again as a
        PUBLISH instead (paho sends what is owed right after this callback): the new
        session hands it on once, and the old one may have handed it on already, before
        it was lost. Never lost, at worst twice."""
        for message in self._client._out_messages.values():
            if message.qos == 2 and message.state == mqtt_ms_resend_pubrel:
                message.state = mqtt_ms_publish
                message.dup = True

    async def __aenter__(self) -> SessionClient:
        # aiomqtt forgets to reset its "connected" future after a connection it did not
        # end itself: entered again, it would not wait for the CONNACK.
        if self._connected.done():
            self._connected = asyncio.Future()
        # The last connection's end was told already (the session's watcher); aiomqtt
        # replaces the future that holds it, and asyncio would call it never retrieved.
        if self._disconnected.done() and not self._disconnected.cancelled():
            self._disconnected.exception()
        held = self._lock.locked()  # someone inside: aiomqtt refuses, and that is right
        try:
            await super().__aenter__()
        except BaseException:
            # aiomqtt releases its lock only for the errors it expects: cancelled in the
            # middle (a stop at start-up), it would stay held, and every later connect
            # would fail with "reusable, but not reentrant".
            if not held:
                self._let_go()
            raise
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        # aiomqtt waits for its DISCONNECT to leave and the socket to close for `timeout`
        # seconds, then raises with its lock still held: the session would never connect
        # again ("reusable, but not reentrant"). A broker that reads nothing (frozen, a
        # full socket buffer) or a loop busy for longer (a start-up under load) does it.
        try:
            await super().__aexit__(*exc_info)
        finally:
            self._let_go()

    def _let_go(self) -> None:
        """The connection, whatever became of it, is over: the socket closed (no old
        socket's packet can reach the next connection), aiomqtt's lock released."""
        try:
            if self._connected.cancelled():  # by asyncio.wait_for: aiomqtt's callbacks
                self._connected = asyncio.Future()  # would raise CancelledError on it
            if self._client._sock is not None:
                self._client._loop_rc_handle(MQTT_ERR_CONN_LOST)  # closes, tells on_disconnect
            if self._disconnected.done() and not self._disconnected.cancelled():
                self._disconnected.exception()  # told here: never "never retrieved"
        finally:
            if self._lock.locked():
                self._lock.release()

    @property
    def in_flight_cap(self) -> int:
        """How many QoS 1 and 2 publishes may await an answer at once on this connection
        (MQTT 5: at most the broker's Receive Maximum); paho queues the rest."""
        return self._client._max_inflight_messages

    def unanswered_for(self, now: float) -> float:
        """How long the broker has left our oldest request (PUBLISH, PUBREL, PINGREQ)
        unanswered without sending anything since: a frozen broker, long before TCP or
        the keep-alive tell. 0 when nothing waits. ``now``: time.monotonic(), paho's clock."""
        paho = self._client
        heard = self._heard
        sent = [paho._ping_t] if paho._ping_t else []
        sent += [
            message.timestamp
            for message in paho._out_messages.values()
            if message.state in _AWAITING_ANSWER
        ]
        waiting = [at for at in sent if at > heard]
        return now - min(waiting) if waiting else 0.0

    def publish_once(
        self,
        topic: str,
        payload: bytes,
        on_sent: PacketNote | None = None,
        on_taken: PacketNote | None = None,
    ) -> asyncio.Future[None]:
        """Hand a message to paho at QoS 2, not retained; done when the broker's PUBCOMP
        came, whatever connection it came on (PublishRefused if the broker refused it).
        ``on_sent(packet_id)`` runs before it can leave (paho writes when the event loop
        next runs), ``on_taken(packet_id)`` when the broker's PUBREC came, before our
        PUBREL. Connected or not: paho keeps it and sends it when a connection is up."""
        largest = self._largest_out
        if largest is not None and publish_size(topic, payload, 2, {}) > largest:
            refused: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            too_large = f"{TOO_LARGE} ({largest} bytes)"
            refused.set_exception(PublishRefused(topic, too_large))
            return refused  # never handed to paho: it would send it on every connection
        info = self._client.publish(topic, payload, qos=2, retain=False)
        if info.rc not in (MQTT_ERR_SUCCESS, MQTT_ERR_NO_CONN):
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        done = self._await_once(info.mid, topic, on_taken)
        if on_sent is not None:
            try:
                on_sent(info.mid)
            except Exception:
                log.exception("qos2_sent_not_noted", packet_id=info.mid)
        return done

    def resume_once(
        self, topic: str, payload: bytes, packet_id: int, *, taken: bool
    ) -> asyncio.Future[None]:
        """A QoS 2 message an earlier process published under ``packet_id`` (and the
        broker acknowledged with PUBREC, if ``taken``): sent on the next connect (call
        before it) as the same PUBLISH with DUP, or only our PUBREL. If the broker kept
        no session, it is published again as a new message."""
        message = MQTTMessage(packet_id, topic.encode())
        message.payload, message.qos, message.retain = payload, 2, False
        # paho's reconnect turns these into "send PUBREL" and "send PUBLISH with DUP".
        message.state = mqtt_ms_wait_for_pubcomp if taken else mqtt_ms_wait_for_pubrec
        self._client._out_messages[packet_id] = message
        return self._await_once(packet_id, topic, None)

    def _await_once(
        self, mid: int, topic: str, on_taken: PacketNote | None
    ) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Retrieved here, so a refusal nobody waits for any more is not a warning.
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._once[mid] = (topic, done, on_taken)
        return done

    async def publish(  # type: ignore[override]
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, **kwargs: Any
    ) -> None:
        _LAST_MID.set(None)
        largest = self._largest_out
        if largest is not None and publish_size(topic, payload, qos, kwargs) > largest:
            too_large = f"{TOO_LARGE} ({largest} bytes)"
            raise PublishRefused(topic, too_large)
        await super().publish(topic, payload, qos, retain, **kwargs)
        mid = _LAST_MID.get()
        reason = None if mid is None else self._refused.pop(mid, None)
        if reason is not None:
            raise PublishRefused(topic, reason)


def new_client(
    options: MqttOptions, on_new_session: Callable[[], None] = lambda: None
) -> SessionClient:
    persistent = options.session_expiry > 0
    v5 = options.protocol == "5"
    properties = None
    if v5:
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.SessionExpiryInterval = options.session_expiry
        properties.MaximumPacketSize = MAX_INBOUND_PACKET
    client = SessionClient(
        **_connection(options),
        identifier=options.client_id,
        keepalive=options.keepalive,
        will=aiomqtt.Will(options.availability_topic, OFFLINE, qos=1, retain=True),
        timeout=10,
        clean_session=None if v5 else not persistent,
        # Every connection is a new aiomqtt client, so the default "clean on the first
        # connect only" would mean always: ask for the existing session explicitly.
        # (paho refuses any other value than the default for MQTT 3.1.1.)
        clean_start=(not persistent) if v5 else MQTT_CLEAN_START_FIRST_ONLY,
        properties=properties,
        # The sender's window, the results and the goodbye fit without paho queueing.
        # MQTT 5: lowered to the broker's Receive Maximum per connection (mqtt/in_flight.py).
        max_inflight_messages=2 * SEND_WINDOW,
        on_new_session=on_new_session,
    )
    # Our own window bounds what is pending; aiomqtt's warning per publish above 10
    # pending would be one log line per message while a broker is slow.
    client.pending_calls_threshold = 4 * SEND_WINDOW
    return client
