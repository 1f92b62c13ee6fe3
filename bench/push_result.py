"""bench/push.py's result of one size, and the table it prints of them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from procstat import percentile
from push_birth import Birth, print_births


@dataclass
class Result:
    n: int
    cpu_per_delta_us: float = float("nan")
    floor_per_delta_us: float = float("nan")
    rss_mib: float = float("nan")
    connect_s: float = float("nan")
    latencies_ms: list[float] = field(default_factory=list)
    mqtt_per_s: float = float("nan")
    birth: Birth | None = None  # Home Assistant's birth message, with discovery on
    harness: dict[str, Any] = field(default_factory=dict)  # its loop watch, latency window
    note: str = ""


def print_table(results: list[Result]) -> None:
    one = next((r for r in results if r.n == 1), None)
    print(
        "| chargers | connect s | CPU us/delta | floor us/delta | ratio | RSS MiB |"
        " KiB/charger over 1 | change p50 ms | p99 ms | samples | MQTT msg/s |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        # One charger's CPU over 30 s is a few clock ticks: its floor may read 0.
        ratio = r.cpu_per_delta_us / r.floor_per_delta_us if r.floor_per_delta_us else float("nan")
        per = (1024 * (r.rss_mib - one.rss_mib) / (r.n - 1)) if one and r.n > 1 else float("nan")
        print(
            f"| {r.n} | {r.connect_s:.1f} | {r.cpu_per_delta_us:.1f} |"
            f" {r.floor_per_delta_us:.1f} | {ratio:.2f} | {r.rss_mib:.1f} | {per:.1f} |"
            f" {percentile(r.latencies_ms, 0.5):.1f} | {percentile(r.latencies_ms, 0.99):.1f} |"
            f" {len(r.latencies_ms)} | {r.mqtt_per_s:.1f} |{(' ' + r.note) if r.note else ''}"
        )
    print_births([(r.n, r.birth) for r in results if r.birth is not None])
    for r in results:  # the harness's own holds while changes were timed
        if r.harness:
            print(f"harness at {r.n}: longest hold {r.harness['lag_max_ms']} ms, longest"
                  f" collection {r.harness['gc_pause_max_ms']} ms")  # fmt: skip
