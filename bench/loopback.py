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
    what a long hold in bridge/info's loop watch was."""
    import asyncio.events
    import time

    run = asyncio.events.Handle._run

    def timed(handle: Any) -> None:
        started = time.perf_counter()
        run(handle)
        took = time.perf_counter() - started
        if took > threshold:
            owner = getattr(handle._callback, "__self__", None)  # a task's wake-up
            name = owner.get_name() if isinstance(owner, asyncio.Task) else ""
            print(f"loop_hold ms={took * 1000:.1f} task={name} callback={handle!r:.300}",
                  file=sys.stderr, flush=True)  # fmt: skip

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
        from goe2mqtt import http_pool

        if args.tls_buffer is not None:
            http_pool.TLS_READ_BUFFER = args.tls_buffer
            http_pool.shrink_tls_buffers.__defaults__ = (args.tls_buffer,)
        if args.keepalive is not None:
            keepalive = args.keepalive
            http_pool.keepalive_for = lambda chargers: keepalive  # type: ignore[assignment]
    if args.module:
        sys.argv = [args.module, *rest]
        runpy.run_module(args.module, run_name="__main__", alter_sys=True)
    else:
        sys.argv = rest
        runpy.run_path(rest[0], run_name="__main__")


if __name__ == "__main__":
    main()
