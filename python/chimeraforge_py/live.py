"""Live progress of a measured child, read by the parent while the child streams
(driver ``live.rs``, the same lines).

The measured path only adds one integer increment per text event (``Counter.n += 1`` on
the event loop's thread, in ``call._Measuring.on_event``). A plain thread, outside the event
loop under test, samples the counters every ``INTERVAL_S`` and writes one line

    @live {"agents":["collector","insight"],"phase":"concurrent","tokens":[12,30]}

to stderr (fd 2, one ``os.write`` per line), byte for byte what the Rust sampler writes
(serde_json: compact, keys sorted). It runs only when the parent asks for it
(``CHIMERAFORGE_LIVE=1``, set when a progress bar is drawn), so scripted and quiet runs have
no sampler thread at all.

What it costs the measurement: the sampler sleeps in ``threading.Event.wait`` (GIL
released) and holds the GIL for the few tens of microseconds it takes to read the counters,
build the line and write it, four times a second. While it holds the GIL the loop thread
cannot run Python code, so a chunk arriving in that window is timestamped up to that much
later; the calls' counters themselves are plain attributes, no lock.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Callable, Mapping, Optional

ENV = "CHIMERAFORGE_LIVE"
PREFIX = "@live "
# live.rs INTERVAL (250 ms).
INTERVAL_S = 0.25


class Counter:
    """One agent's text events in the phase running now (core's AtomicU64)."""

    __slots__ = ("n",)

    def __init__(self) -> None:
        self.n = 0


class LiveCounters:
    """Counters shared between the calls (writers, the loop thread) and the sampler (reader)."""

    def __init__(self, agents: int) -> None:
        self.phase = "starting"
        self.tokens = [Counter() for _ in range(agents)]

    def set_phase(self, phase: str) -> None:
        """The phase now running; counters restart at zero for it (LiveCounters::set_phase)."""
        for t in self.tokens:
            t.n = 0
        self.phase = phase

    def snapshot(self) -> tuple:
        return self.phase, [t.n for t in self.tokens]


def format_line(phase: str, agents: list, tokens: list) -> str:
    """One live line without its newline, as serde_json::json! writes it (keys sorted)."""
    body = json.dumps(
        {"phase": phase, "agents": agents, "tokens": tokens},
        separators=(",", ":"),
        ensure_ascii=False,
        sort_keys=True,
    )
    return PREFIX + body


def _write_stderr(data: bytes) -> None:
    while data:
        n = os.write(2, data)
        data = data[n:]


class Sampler:
    """The sampler thread; ``stop()`` ends and joins it (the Rust one stops when dropped)."""

    def __init__(self, counters: LiveCounters, ids: list, write: Callable[[bytes], None], interval_s: float):
        self.counters = counters
        self.ids = list(ids)
        self._write = write
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="live-progress", daemon=True)

    @staticmethod
    def start_if_requested(
        counters: LiveCounters,
        ids: list,
        env: Optional[Mapping[str, str]] = None,
        write: Callable[[bytes], None] = _write_stderr,
        interval_s: float = INTERVAL_S,
    ) -> Optional["Sampler"]:
        """Start sampling ``counters`` for agents named ``ids``, if the parent asked for it."""
        env = os.environ if env is None else env
        if env.get(ENV) != "1":
            return None
        s = Sampler(counters, ids, write, interval_s)
        s._thread.start()
        return s

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            phase, tokens = self.counters.snapshot()
            line = format_line(phase, self.ids, tokens) + "\n"
            try:
                self._write(line.encode("utf-8"))
            except OSError:
                return  # the parent stopped reading; the run goes on without progress

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
