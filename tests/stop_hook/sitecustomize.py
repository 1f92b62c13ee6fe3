"""Imported at the start of a daemon whose PYTHONPATH begins with this folder: with
TEST_STOP_HOOK_TURNS set, the start-up's look for another live bridge sends the
process its own SIGTERM as the SUBACK of its second subscription (the heartbeat's) comes,
and hands that SUBACK to aiomqtt that many turns of the event loop later. A SIGTERM and
a SUBACK together, as in the CI run where the stop overran (tests/integration/
test_bounded_stop.py); never imported by the bridge itself."""

from __future__ import annotations

import os

TURNS = os.environ.get("TEST_STOP_HOOK_TURNS")

if TURNS is not None:
    import asyncio
    import signal
    from typing import Any

    import aiomqtt

    plain = aiomqtt.Client._on_subscribe
    subacks: dict[int, int] = {}

    def stopped_with_the_second_suback(client: aiomqtt.Client, *args: Any, **kwargs: Any) -> None:
        subacks[id(client)] = seen = subacks.get(id(client), 0) + 1
        if seen != 2 or not client.identifier.endswith("-preflight"):
            plain(client, *args, **kwargs)
            return
        os.kill(os.getpid(), signal.SIGTERM)
        loop = asyncio.get_running_loop()

        def later(left: int) -> None:
            if left == 0:
                plain(client, *args, **kwargs)
            else:
                loop.call_soon(later, left - 1)

        later(int(TURNS))

    aiomqtt.Client._on_subscribe = stopped_with_the_second_suback  # type: ignore[method-assign]
