"""Measures the package against the original module, side by side in one run.

    python python/bench/bench.py [--dir DIR] [--rounds N]

Runs on a tmpfs directory (``/dev/shm`` by default) so that the CPU cost shows, not the disk's.
Prints the cost of each side per call and the ratio (original / package), the median of N
rounds of interleaved batches, so that a noisy machine slows both sides alike:

- ``compat.save_state`` against the original ``save_state``, on a document with 100 first-turn
  marks (the package also takes the file's lock, keeps ``NAME.prev`` and syncs the directory);
- ``Engine.session_started`` (durable) against the original's ``load_state`` +
  ``mark_session_opened`` + ``save_state`` on the same document.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import original_daemon_state as original  # noqa: E402

from daemon_state import Engine, compat  # noqa: E402


def document(now: datetime) -> dict:
    marks = {f"sess-{i:03d}": (now - timedelta(minutes=i)).isoformat() for i in range(100)}
    return {
        "fsm_state": "WAKE",
        "fsm_transition_at": now.isoformat(),
        "daemon_started_at": now.isoformat(),
        "first_turn_pending": marks,
        "last_session_ts": now.isoformat(),
    }


def per_call(fn, calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls


def compare(name: str, theirs, ours, rounds: int, calls: int) -> float:
    theirs(), ours()
    a, b = [], []
    for _ in range(rounds):
        a.append(per_call(theirs, calls))
        b.append(per_call(ours, calls))
    ta, tb = statistics.median(a), statistics.median(b)
    ratio = ta / tb
    print(f"{name}: original {ta * 1e6:.1f} us, package {tb * 1e6:.1f} us, ratio {ratio:.2f}x")
    return ratio


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dir", default="/dev/shm" if os.path.isdir("/dev/shm") else None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        root.chmod(0o700)
        now = datetime.now(timezone.utc)
        doc = document(now)

        original.STATE_PATH = root / "original-save.json"
        compat.STATE_PATH = root / "compat-save.json"
        save = compare(
            "save_state, 100 marks",
            lambda: original.save_state(doc),
            lambda: compat.save_state(doc),
            args.rounds,
            args.calls,
        )

        original.STATE_PATH = root / "original-open.json"
        original.save_state(document(now))
        engine = Engine(root / "engine-open.json")
        for i in range(100):
            engine.session_started(f"sess-{i:03d}")

        def original_open() -> None:
            state = original.load_state()
            original.mark_session_opened(state, "sess-new")
            original.save_state(state)

        opened = compare(
            "session opening, durable",
            original_open,
            lambda: engine.session_started("sess-new"),
            args.rounds,
            args.calls,
        )
    print(f"targets: save_state >= 2.5x ({save:.2f}x), session opening >= 3x ({opened:.2f}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
