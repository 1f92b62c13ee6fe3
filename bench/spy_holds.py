"""What held the event loop: the runs of busy samples in a py-spy speedscope profile.

    python bench/spy_holds.py PROFILE.json [--min-ms 100]

bench/push.py --profile writes such a profile (py-spy --idle, 50 samples a second, in
order). The main thread's sample is idle when its innermost frame waits in the
selector; a run of busy samples longer than --min-ms is a hold of the loop. Each hold
is printed with the frames most of its samples were in; then the frames of the whole
window by share of busy samples.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import Any

IDLE = ("select", "poll", "_run_once")  # the selector's wait, at the loop's top


def main_thread(profile: dict[str, Any]) -> dict[str, Any]:
    threads = profile["profiles"]
    return next((t for t in threads if "MainThread" in t["name"]), threads[0])


def describe(frames: list[dict[str, Any]], stack: list[int], depth: int = 4) -> str:
    """The innermost `depth` frames, innermost last."""
    names = [f"{Path(frames[i]['file']).name}:{frames[i]['name']}" for i in stack]
    return " < ".join(reversed(names[-depth:]))


def is_idle(frames: list[dict[str, Any]], stack: list[int]) -> bool:
    return bool(stack) and frames[stack[-1]]["name"].rsplit(".", 1)[-1] in IDLE


def holds(path: Path, min_ms: float) -> None:
    profile = json.loads(path.read_text())
    frames = profile["shared"]["frames"]
    thread = main_thread(profile)
    samples, weights = thread["samples"], thread["weights"]
    busy_total: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()  # samples with the function anywhere on the stack
    run: list[list[int]] = []
    run_s = 0.0
    at = 0.0
    found = 0

    def close() -> None:
        nonlocal found
        if run and run_s * 1000 >= min_ms:
            found += 1
            top = Counter(describe(frames, s) for s in run).most_common(3)
            shown = "; ".join(f"{n}x {name}" for name, n in top)
            print(f"t={at - run_s:7.2f}s hold {run_s * 1000:6.0f} ms ({len(run)} samples): {shown}")

    for stack, weight in zip(samples, weights, strict=True):
        if is_idle(frames, stack):
            close()
            run, run_s = [], 0.0
        else:
            run.append(stack)
            run_s += weight
            busy_total[describe(frames, stack, 3)] += 1
            for name in {describe(frames, [i], 1) for i in stack}:
                inclusive[name] += 1
        at += weight
    close()
    busy = sum(busy_total.values())
    print(f"{found} holds >= {min_ms:.0f} ms in {at:.1f} s; busy {busy} of {len(samples)} samples")
    for name, n in busy_total.most_common(25):
        print(f"  {100 * n / max(1, busy):5.1f}%  {name}")
    print("functions anywhere on a busy stack (inclusive), share of busy samples:")
    for name, n in inclusive.most_common(40):
        print(f"  {100 * n / max(1, busy):5.1f}%  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("profile", type=Path)
    parser.add_argument("--min-ms", type=float, default=100.0)
    args = parser.parse_args()
    holds(args.profile, args.min_ms)


if __name__ == "__main__":
    main()
