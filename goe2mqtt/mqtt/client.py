"""The MQTT client layer under the session: paho and aiomqtt as we need them.

Making a client for our session, handing inbound messages over inside paho's
callback (before the PUBACK), telling why a connection failed, and the pre-flight
look for another live bridge. Knows nothing of go-e.
"""

from __future__ import annotations

import asyncio
import contextvars
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt
import structlog
from paho.mqtt.client import (
    MQTT_CLEAN_START_FIRST_ONLY,
    MQTT_ERR_NO_CONN,
    MQTT_ERR_SUCCESS,
    mqtt_ms_publish,
    mqtt_ms_resend_pubrel,
)
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from goe2mqtt.mqtt.topics import OFFLINE

log = structlog.get_logger()

RETAINED_QUIET = 0.3  # no new message for this long: the retained ones are all here
RETAINED_LIMIT = 10.0
SEND_WINDOW = 16  # retained publishes awaiting their PUBACK at once


@dataclass(frozen=True)
class InboundMessage:
    topic: str
    payload: bytes
    retain: bool
    mid: int | None = None  # QoS 1 packet id: a redelivery (dup) carries the same one
    dup: bool = False


@dataclass(frozen=True)
class MqttOptions:
    host: str
    port: int = 1883
    username: str | None = None
    password: str | None = None
    client_id: str = "goe2mqtt"
    keepalive: int = 60
    availability_topic: str = "goe2mqtt/bridge/availability"
    protocol: str = "5"  # "5" or "3.1.1"
    # The broker keeps our subscriptions and queues QoS 1 messages for us this long
    # while we are away (MQTT 5; with 3.1.1 the broker's own policy applies). 0: no session.
    session_expiry: int = 0
    tls: ssl.SSLContext | None = None

    def __repr__(self) -> str:  # the password stays out of tracebacks
        return f"MqttOptions(host={self.host!r}, port={self.port}, client_id={self.client_id!r})"


# Called for every inbound message before the broker gets its PUBACK: what it stores
# is safe. It must answer what it cannot handle itself: whatever it raises is logged
# and swallowed here, and the PUBACK goes out. (A raise escaping paho's callback ends
# the client, and the broker then delivers the same message at every reconnect: one
# poison message would stop the bridge for good.)
MessageHandler = Callable[[InboundMessage], None]


def hand_over_before_ack(
    client: aiomqtt.Client,
    counter: list[int],
    handler: MessageHandler,
    own_availability: tuple[str, Callable[[bytes], None]] | None = None,
) -> None:
    """Route inbound messages to ``handler`` inside paho's callback.

    paho sends the PUBACK of a QoS 1 message right after its on_message callback
    returns; aiomqtt's own callback only queues the message, so an acknowledged
    command would still be in memory only. aiomqtt 2.x has no public hook for this.
    """

    def on_message(_client: Any, _userdata: Any, message: Any) -> None:
        counter[0] += 1
        try:
            topic = message.topic
        except UnicodeDecodeError:
            return  # not a topic of ours
        try:
            if own_availability is not None and topic == own_availability[0]:
                own_availability[1](bytes(message.payload))  # not the handler's business
                return
            handler(
                InboundMessage(
                    topic=topic,
                    payload=bytes(message.payload),
                    retain=bool(message.retain),
                    mid=message.mid if message.qos > 0 else None,
                    dup=bool(message.dup),
                )
            )
        except Exception:
            log.exception("inbound_message_failed", topic=topic, size=len(message.payload))

    client._client.on_message = on_message


async def until_quiet(counter: list[int]) -> None:
    """Wait until no more messages arrive for a moment (the retained ones are in)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + RETAINED_LIMIT
    seen = -1
    while loop.time() < deadline and counter[0] != seen:
        seen = counter[0]
        await asyncio.sleep(RETAINED_QUIET)


# Every packet goes out when written (Nagle's algorithm off; paho leaves it on). With
# it on, a small packet written while the previous one still awaits the peer's delayed
# ACK waits for that ACK, up to ~40 ms: a command's PUBACK, a result. The broker has the
# same choice for what it sends us (Mosquitto: set_tcp_nodelay true); with its default,
# about 1 % of commands arrived ~40 ms late even on a quiet loopback bench (README).
NO_DELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)


def _connection(options: MqttOptions) -> dict[str, Any]:
    """Where and how to reach the broker: the same for the session and side clients."""
    return {
        "hostname": options.host,
        "port": options.port,
        "username": options.username,
        "password": options.password,
        "protocol": aiomqtt.ProtocolVersion.V5
        if options.protocol == "5"
        else aiomqtt.ProtocolVersion.V311,
        "tls_context": options.tls,
        "tls_insecure": None if options.tls is None else not options.tls.check_hostname,
        "socket_options": NO_DELAY,
    }


def side_client(options: MqttOptions, role: str, timeout: float) -> aiomqtt.Client:
    """A short extra connection beside the session (a check, the preflight): own id."""
    return aiomqtt.Client(
        **_connection(options), identifier=f"{options.client_id}-{role}", timeout=timeout
    )


class PublishRefused(aiomqtt.MqttError):
    """The broker answered a publish with a failure reason code (MQTT 5), e.g. an
    ACL's "not authorized": it did not take the message."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"broker refused the publish to {topic}: {reason}")
        self.topic = topic
        self.reason = reason


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
    so the broker, which keeps our session, hands it on once."""

    def __init__(self, *args: Any, on_new_session: Callable[[], None], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._refused: dict[int, str] = {}
        # QoS 2 publishes paho holds for us: packet id -> (topic, done when PUBCOMP came).
        self._once: dict[int, tuple[str, asyncio.Future[None]]] = {}
        paho = self._client
        paho_publish = paho.publish
        paho_handle_pubrec = paho._handle_pubrec
        aiomqtt_on_publish: Any = paho.on_publish
        aiomqtt_on_connect: Any = paho.on_connect
        v5 = kwargs.get("protocol") == aiomqtt.ProtocolVersion.V5

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
            if v5 and len(packet) > 2 and packet[2] >= 0x80:
                code = ReasonCode(PacketTypes.PUBREC, identifier=packet[2])
                refused(int.from_bytes(packet[:2], "big"), code)
            return paho_handle_pubrec()

        def on_publish(client: Any, userdata: Any, mid: int, code: Any, props: Any) -> None:
            if getattr(code, "is_failure", False):
                refused(mid, code)
            once = self._once.pop(mid, None)
            if once is not None:
                topic, done = once
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
            if not getattr(code, "is_failure", False) and not flags.session_present:
                self._session_lost()
                on_new_session()
            aiomqtt_on_connect(client, userdata, flags, code, props)

        paho.publish = publish  # type: ignore[method-assign]
        paho._handle_pubrec = handle_pubrec  # type: ignore[method-assign]
        paho.on_publish = on_publish
        paho.on_connect = on_connect

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
        await super().__aenter__()
        return self

    def publish_once(self, topic: str, payload: bytes) -> asyncio.Future[None]:
        """Hand a message to paho at QoS 2, not retained; done when the broker's PUBCOMP
        came, whatever connection it came on (PublishRefused if the broker refused it).

        Connected or not: paho keeps it and sends it when a connection is up."""
        info = self._client.publish(topic, payload, qos=2, retain=False)
        if info.rc not in (MQTT_ERR_SUCCESS, MQTT_ERR_NO_CONN):
            raise aiomqtt.MqttCodeError(info.rc, "Could not publish message")
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Retrieved here, so a refusal nobody waits for any more is not a warning.
        done.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._once[info.mid] = (topic, done)
        return done

    async def publish(  # type: ignore[override]
        self, topic: str, payload: bytes, qos: int = 0, retain: bool = False, **kwargs: Any
    ) -> None:
        _LAST_MID.set(None)
        await super().publish(topic, payload, qos, retain, **kwargs)
        mid = _LAST_MID.get()
        reason = None if mid is None else self._refused.pop(mid, None)
        if reason is not None:
            raise PublishRefused(topic, reason)


# The largest packet we take from the broker (MQTT 5 CONNECT property): the broker
# drops anything larger instead of making us read it. A command is at most 4 KiB; our
# own retained configs and states, read back once at connect, are far below this.
MAX_INBOUND_PACKET = 256 * 1024


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
        max_inflight_messages=2 * SEND_WINDOW,
        on_new_session=on_new_session,
    )
    # Our own window bounds what is pending; aiomqtt's warning per publish above 10
    # pending would be one log line per message while a broker is slow.
    client.pending_calls_threshold = 4 * SEND_WINDOW
    return client


# (what an error's text contains, what it means): aiomqtt turns the OSError of a
# failed connect into a plain MqttError, so its text is what is left to go by.
_CONNECT_CAUSES = (
    (("Errno -2", "Errno -3", "Errno -5", "Name or service not known"),
     "DNS: the host name does not resolve"),
    (("Connection refused", "Errno 111"), "refused: nothing listens on that host and port"),
    (("CERTIFICATE_VERIFY_FAILED", "SSL", "certificate"),
     "TLS: the handshake or the certificate failed"),
    # paho 2 reports a refused CONNACK as its MQTT 5 reason (134, 135) for 3.1.1 too;
    # a bare [code:4] or [code:5] is paho's own error number, not a CONNACK's.
    (("code:134", "code:135", "Not authori", "Bad user name", "Bad username"),
     "auth: the broker refused the user name or password"),
    (("not currently connected", "code:7]", "connection was lost"),
     "lost: the connection ended under us (the broker or the network dropped it)"),
    (("The connection was refused",), "refused: the broker turned the connection down"),
    (("keepalive interval", "code:16]"),
     "timeout: the broker went silent for longer than the keep-alive"),
    (("No route to host", "unreachable"), "network: no route to the host"),
    (("timed out",), "timeout: no answer in time"),
    # Mosquitto ends a connection this way when it stops or restarts, and when another
    # client takes our client id: it sends no reason.
    (("code:128", "Unspecified error"),
     "closed by the broker: it stopped or restarted (or another client took our client_id)"),
)  # fmt: skip


def connect_cause(error: BaseException | str) -> str:
    """What kind of failure a connect error is: DNS, refused, TLS, auth, network, timeout."""
    text = str(error)
    for needles, cause in _CONNECT_CAUSES:
        if any(needle in text for needle in needles):
            return cause
    return "other"


class BrokerStalled(aiomqtt.MqttError):
    """The broker stopped acknowledging: the connection is dead even if TCP is not."""


class SessionTakenOver(Exception):
    """Another client connected with our client id. Reconnecting would knock it off in
    turn, every second, for ever: the session ends instead."""


SESSION_TAKEN_OVER = 142  # MQTT 5 DISCONNECT reason code


def disconnect_cause(client: aiomqtt.Client) -> BaseException | None:
    """What aiomqtt knows about why the connection ended ("[code:142] Session taken
    over") but its message iterator reports as "Disconnected during message iteration"."""
    ended = client._disconnected
    if ended.done() and not ended.cancelled():
        return ended.exception()
    return None


async def until_disconnected(client: aiomqtt.Client) -> None:
    """Wait for the connection to end; raises what ended it.

    Nothing is queued for us (messages are handed over in paho's callback): aiomqtt's
    message stream only tells when the connection ends. Its own error says "Disconnected
    during message iteration"; the cause it keeps says why ("[code:142] Session taken
    over", a keep-alive timeout)."""
    try:
        async for _ in client.messages:
            pass
    except aiomqtt.MqttError:
        cause = disconnect_cause(client)
        if cause is not None:
            raise cause from None
        raise
    raise aiomqtt.MqttError("message stream ended")


def is_takeover(error: BaseException) -> bool:
    code = getattr(error, "rc", None)
    return getattr(code, "value", code) == SESSION_TAKEN_OVER
