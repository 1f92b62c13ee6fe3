"""The MQTT client layer under the session: paho and aiomqtt as we need them.

The options of a connection, its subscriptions, handing inbound messages over inside
paho's callback (before the PUBACK), telling why a connection failed or ended. The
session's own client is in mqtt/session_client.py. Knows nothing of go-e.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import aiomqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from goe2mqtt.mqtt.pace import BULK_RATE, MAX_RATE

log = structlog.get_logger()

RETAINED_QUIET = 0.3  # no new message for this long: the retained ones are all here
RETAINED_LIMIT = 10.0
SEND_WINDOW = 16  # retained publishes awaiting their PUBACK at once
# The largest packet we take from the broker (MQTT 5 CONNECT property): the broker
# drops anything larger instead of making us read it. A command is at most 4 KiB; our
# own retained configs and states, read back once at connect, are far below this.
MAX_INBOUND_PACKET = 256 * 1024


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
    # Bulk publishes (a family sent whole, everything sent again) a second at most, after
    # a first burst; 0: as fast as the broker acknowledges (mqtt/pace.py).
    bulk_rate: float = BULK_RATE
    # Every retained publish (changes too) a second at most, after a first burst; 0: no limit.
    max_rate: float = MAX_RATE

    def __repr__(self) -> str:  # the password stays out of tracebacks
        return f"MqttOptions(host={self.host!r}, port={self.port}, client_id={self.client_id!r})"


@dataclass(frozen=True)
class Subscription:
    topic: str
    qos: int = 1
    # MQTT 5: the broker does not send us back what we publish there ourselves.
    no_local: bool = False
    # Only for what is retained there, read once per process on a side connection
    # (mqtt/look_back.py): never a subscription of the session. Echoes of our own
    # publishes would otherwise come back all the time, and aiomqtt stalls our
    # publishes while it reads them (docs/scaling.md has the figure).
    retained_only: bool = False
    # MQTT 5: a message published with retain keeps the flag on its way to us, so a
    # retained publish (or someone clearing one) is never taken for a live command.
    retain_as_published: bool = False
    # MQTT 5 only: topics of ours watched for what others write there (the session
    # answers with our value, mqtt/overwrites.py): no_local, and nothing retained sent
    # at subscribe. With 3.1.1 not subscribed: every publish of ours would come back.
    ours: bool = False


# Called for every inbound message before the broker gets its PUBACK: what it stores
# is safe. It must answer what it cannot handle itself: whatever it raises is logged
# and swallowed here, and the PUBACK goes out. (A raise escaping paho's callback ends
# the client, and the broker then delivers the same message at every reconnect: one
# poison message would stop the bridge for good.)
MessageHandler = Callable[[InboundMessage], None]


async def subscribe(
    client: aiomqtt.Client, subscriptions: Iterable[Subscription], v5: bool
) -> None:
    """A connection's subscriptions, but the retained-only ones (mqtt/look_back.py)
    and ``ours`` (mqtt/own_topics.py watches those)."""
    for sub in subscriptions:
        if sub.retained_only or sub.ours:
            continue
        if v5:
            await client.subscribe(
                sub.topic,
                options=SubscribeOptions(
                    qos=sub.qos, noLocal=sub.no_local, retainAsPublished=sub.retain_as_published
                ),
            )
        else:
            await client.subscribe(sub.topic, qos=sub.qos)


def hand_over_before_ack(
    client: aiomqtt.Client,
    counter: list[int],
    handler: MessageHandler,
    own: Callable[[str, bytes], bool] | None = None,
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
            if own is not None and own(topic, message.payload):
                return  # a topic of the session's own: not the handler's business
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
# same choice for what it sends us (Mosquitto: set_tcp_nodelay true; the README and
# docs/scaling.md say what its default costs).
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
    """A short extra connection beside the session (a check, the preflight): own id.
    It takes what the session takes at most: the look-back and the preflight read what
    any broker user retained on our topics (a 4 MiB availability was read whole)."""
    properties = None
    if options.protocol == "5":
        properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        properties.MaximumPacketSize = MAX_INBOUND_PACKET
    client = aiomqtt.Client(
        **_connection(options),
        identifier=f"{options.client_id}-{role}",
        timeout=timeout,
        properties=properties,
    )
    if properties is not None:
        refuse_larger(client._client, MAX_INBOUND_PACKET)
    return client


class PacketTooLarge(OSError):
    """The broker sent a packet larger than our CONNECT's Maximum Packet Size."""


def refuse_larger(paho: Any, largest: int) -> None:
    """End ``paho``'s connection at the header of a packet larger than ``largest`` (what
    our MQTT 5 CONNECT said we take), nothing of its body read: a broker that ignores it
    (hostile, broken) announced up to 256 MiB, and paho read and kept all of it."""
    paho_sock_recv = paho._sock_recv

    def sock_recv(bufsize: int) -> Any:
        packet = paho._in_packet
        if packet["have_remaining"]:  # reading a packet's body: its size is known
            size = 1 + len(packet["remaining_count"]) + packet["remaining_length"]
            # Mosquitto counts what it sends us without its first byte: it sends a packet
            # of largest + 1. Refused, it came again at every connect (one unacknowledged).
            if size > largest + 1:
                log.warning("mqtt_packet_too_large", size=size, largest=largest,
                            action="connection ended, nothing of it read")  # fmt: skip
                # paho ends the connection on an OSError here (the session reconnects).
                raise PacketTooLarge(f"broker sent a {size}-byte packet (at most {largest})")
        return paho_sock_recv(bufsize)

    paho._sock_recv = sock_recv


def publish_size(topic: str, payload: Any, qos: int, kwargs: dict[str, Any]) -> int:
    """The size of the PUBLISH packet paho makes (MQTT 5): fixed header, topic, packet
    id, properties (their length alone when none), payload (as paho encodes it)."""
    properties = kwargs.get("properties")
    packed = len(properties.pack()) if properties is not None else 1
    if isinstance(payload, (bytes, bytearray)):
        data = len(payload)
    else:
        data = 0 if payload is None else len(str(payload).encode())
    remaining = 2 + len(topic.encode()) + (2 if qos else 0) + packed + data
    length_bytes = next(n for n in (1, 2, 3, 4) if remaining < 128**n)
    return 1 + length_bytes + remaining


class PublishRefused(aiomqtt.MqttError):
    """The broker answered a publish with a failure reason code (MQTT 5), e.g. an
    ACL's "not authorized": it did not take the message."""

    def __init__(self, topic: str, reason: str) -> None:
        super().__init__(f"broker refused the publish to {topic}: {reason}")
        self.topic = topic
        self.reason = reason


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


async def until_ended(client: aiomqtt.Client, client_id: str) -> None:
    """until_disconnected, a takeover raised as SessionTakenOver (the cure said)."""
    try:
        await until_disconnected(client)
    except Exception as exc:
        if is_takeover(exc):
            raise SessionTakenOver(
                f"another client connected with client_id {client_id!r}"
                " and took over the session: give every instance its own"
                " mqtt.client_id"
            ) from None
        raise


def wire_bytes(payload: str | bytes) -> bytes:
    """A payload as sent: UTF-8, and never an exception. A lone surrogate (JSON's
    "\\ud800", parsed from someone's message and echoed back) cannot be UTF-8: it goes
    as the escape it came as, six ASCII characters, which JSON reads back the same."""
    if isinstance(payload, bytes):
        return payload
    return payload.encode("utf-8", "backslashreplace")
