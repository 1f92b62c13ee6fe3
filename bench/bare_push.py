"""The floor for bench/push.py: N websockets that authenticate and parse every frame.

Same client library, same hash, same handshake and the same frames as goe2mqtt's
websocket transport, and nothing else: no merging, no catalogue, no MQTT.
Run by push.py: bare_push.py URLS.json TOKEN PASSWORD
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import aiohttp

from goe2mqtt.goe.ws_protocol import auth_message, hash_kind, hashed_password


async def read_forever(session: aiohttp.ClientSession, url: str, token: str, password: str) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with session.ws_connect(url, headers=headers, max_msg_size=1 << 20) as socket:
        hello: dict[str, object] = {}
        async for frame in socket:
            message = json.loads(frame.data)
            if message["type"] == "hello":
                hello = message
            elif message["type"] == "authRequired":
                kind = hash_kind(message, hello)
                hashed = await asyncio.to_thread(hashed_password, password, str(hello["serial"]),
                                                 kind)  # fmt: skip
                await socket.send_str(json.dumps(auth_message(message, hashed)))


async def main() -> None:
    urls = json.loads(Path(sys.argv[1]).read_text())
    token, password = sys.argv[2], sys.argv[3]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(read_forever(session, url, token, password) for url in urls))


if __name__ == "__main__":
    asyncio.run(main())
