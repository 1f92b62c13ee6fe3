"""Run a program with every go-e cloud host resolved to loopback (benchmarks only).

    python bench/loopback.py [--tls-buffer BYTES] [--keepalive S] -m goe2mqtt ARGS...
    python bench/loopback.py [...] bench/bare_poll.py ARGS...

The fleet benchmark serves one TLS host per charger ({serial}.api.v3.go-e.io, as the
cloud does) from the simulator on 127.0.0.1: this maps those names to loopback in the
process it starts, and nothing outside it. --tls-buffer and --keepalive override the
bridge's connection policy, for the trade-off table.
"""

from __future__ import annotations

import argparse
import runpy
import socket
import sys
from typing import Any

CLOUD_SUFFIX = ".api.v3.go-e.io"
_getaddrinfo = socket.getaddrinfo


def _loopback(host: Any, *args: Any, **kwargs: Any) -> Any:
    name = host.decode() if isinstance(host, bytes) else host
    if isinstance(name, str) and name.endswith(CLOUD_SUFFIX):
        host = "127.0.0.1"
    return _getaddrinfo(host, *args, **kwargs)


def _trace_holds(threshold: float) -> None:
    """Name every event-loop callback that ran longer than `threshold` s (to stderr):
    what a long hold in bridge/info's loop watch was. A watchdog thread takes the loop
    thread's stack once a callback has run `threshold` s, so the report says where the
    time went (and whether the garbage collector ran meanwhile), not only which handle."""
    import asyncio.events
    import gc
    import threading
    import time
    import traceback

    run = asyncio.events.Handle._run
    loop_thread = threading.get_ident()
    current: list[float] = [0.0]  # when the running callback started; 0.0 between them
    stacks: list[str] = []
    collections: list[float] = []
    gc_started: list[float] = [0.0]

    def on_gc(phase: str, _info: dict[str, int]) -> None:
        if threading.get_ident() != loop_thread:
            return
        if phase == "start":
            gc_started[0] = time.perf_counter()
        else:
            collections.append(time.perf_counter() - gc_started[0])

    def watch() -> None:
        seen = 0.0
        while True:
            time.sleep(threshold / 4)
            started = current[0]
            if started and started != seen and time.perf_counter() - started > threshold:
                seen = started
                frame = sys._current_frames().get(loop_thread)
                if frame is not None:
                    stacks.append("".join(traceback.format_stack(frame, limit=12)))

    def timed(handle: Any) -> None:
        started = time.perf_counter()
        current[0] = started
        stacks.clear()
        collections.clear()
        run(handle)
        current[0] = 0.0
        took = time.perf_counter() - started
        if took > threshold:
            owner = getattr(handle._callback, "__self__", None)  # a task's wake-up
            name = owner.get_name() if isinstance(owner, asyncio.Task) else ""
            gc_ms = sum(collections) * 1000
            print(f"loop_hold ms={took * 1000:.1f} gc_ms={gc_ms:.1f} "
                  f"collections={len(collections)} task={name} callback={handle!r:.300}",
                  file=sys.stderr, flush=True)  # fmt: skip
            for stack in stacks[:1]:
                print("  stack at the threshold:\n" + stack, file=sys.stderr, flush=True)

    gc.callbacks.append(on_gc)
    threading.Thread(target=watch, name="hold-watch", daemon=True).start()
    setattr(asyncio.events.Handle, "_run", timed)  # noqa: B010 - a method, patched


def main() -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--tls-buffer", type=int)
    parser.add_argument("--keepalive", type=float)
    parser.add_argument("--trace-holds", type=float, help="ms: log every callback longer")
    parser.add_argument("-m", dest="module")
    args, rest = parser.parse_known_args()
    socket.getaddrinfo = _loopback
    if args.trace_holds is not None:
        _trace_holds(args.trace_holds / 1000)
    if args.tls_buffer is not None or args.keepalive is not None:
        from goe2mqtt.goe import pool as http_pool

        if args.tls_buffer is not None:
            http_pool.TLS_READ_BUFFER = args.tls_buffer
            http_pool.shrink_tls_buffers.__defaults__ = (args.tls_buffer,)
        if args.keepalive is not None:
            http_pool.KEEPALIVE = args.keepalive
    if args.module:
        sys.argv = [args.module, *rest]
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)
    else:
        sys.argv = rest
        runpy.run_path(rest[0], run_name="__main__")


if __name__ == "__main__":
    main()
