"""The sleep/wake lifecycle engine of a long-lived daemon, in-process.

``Engine`` runs the lifecycle over a state file: feed it events (a tick, a session opening, a
recall, the lock's answer, a finished REM cycle, operator requests) and it answers with an
``Outcome``: the transitions it took between WAKE, TRANSITIONING, SLEEP and DREAMING, and the
effects for the host to perform, in order. Every transition is durable before the call returns.

``daemon_state.compat`` is a drop-in for the original ``daemon_state`` module's functions.

A night, driven by hand::

    from datetime import datetime, timedelta, timezone
    from daemon_state import Engine

    engine = Engine.in_memory()
    t = datetime(2026, 4, 18, 9, 0, tzinfo=timezone.utc)
    engine.boot(at=t)
    engine.session_started("s1", at=t)
    t += timedelta(hours=2, minutes=1)
    assert engine.tick(at=t).effects == [{"effect": "acquire_lock"}]
    outcome = engine.lock_acquired(at=t)
    while engine.state == "DREAMING":
        outcome = engine.rem_cycle_finished(summaries_created=3, at=t)
    assert engine.state == "WAKE"
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from . import _native
from .errors import DaemonStateError, Rejected, StateFileError

__all__ = [
    "DaemonStateError",
    "Engine",
    "Outcome",
    "Rejected",
    "StateFileError",
]


def _moment(at: datetime | None) -> str | None:
    """An event's moment as RFC 3339 text: an aware ``datetime`` as it is, a naive one as UTC
    (as the original reads stored moments); ``None`` means now."""
    if at is None:
        return None
    if not isinstance(at, datetime):
        raise TypeError(f"at: expected a datetime, got {type(at).__name__}")
    if at.tzinfo is None or at.tzinfo.utcoffset(at) is None:
        at = at.replace(tzinfo=timezone.utc)
    return at.isoformat()


def _parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


@dataclass(frozen=True)
class Outcome:
    """What one event did.

    ``transitions`` are dicts ``{"from", "to", "reason", "at"}``; ``effects`` are dicts as the
    ``serve`` protocol spells them (``{"effect": "acquire_lock"}``, ``{"effect": "run_rem_cycle",
    "cycle": 1, "of": 4, "is_last": False}``, ``{"effect": "emit", "kind": ..., "payload": ...,
    "severity": ...}``), to be performed in order. ``first_turn`` and ``digest`` answer a
    recall (``None`` otherwise, and ``digest`` is ``None`` when none was delivered).
    ``next_deadline`` is when to tick next (``None``: nothing is due until another event).
    """

    state: str
    transitions: list[dict[str, Any]] = field(default_factory=list)
    effects: list[dict[str, Any]] = field(default_factory=list)
    first_turn: bool | None = None
    digest: dict[str, Any] | None = None
    next_deadline: datetime | None = None


class Engine:
    """The lifecycle engine over one state file.

    Every event method takes an optional ``at`` (a ``datetime``; naive means UTC; ``None`` means
    now) and returns an :class:`Outcome`. A refused event raises :class:`Rejected` and changes
    nothing; a state file that cannot be read or written raises :class:`StateFileError`, and the
    engine is back at the last durable state. An engine may be shared between threads: calls are
    serialized, and the GIL is released while it waits for the file's lock or writes.
    """

    __slots__ = ("_native", "_path")

    def __init__(self, path: str | os.PathLike[str]) -> None:
        """Opens the engine on the state file at ``path`` (``~`` expanded; created with its
        directory on the first save)."""
        self._path: str | None = os.path.expanduser(os.fspath(path))
        self._native = _native.Engine(self._path)

    @classmethod
    def in_memory(cls) -> Engine:
        """An engine whose state lives in memory only (for tests)."""
        engine = cls.__new__(cls)
        engine._native = _native.Engine.in_memory()
        engine._path = None
        return engine

    def __repr__(self) -> str:
        return f"Engine(state={self.state!r}, path={self._path!r})"

    # -- the events -------------------------------------------------------------------------

    def _event(self, kind: str, at: datetime | None, **fields: Any) -> Outcome:
        ts = _moment(at)
        message = {"type": kind, "ts": ts if ts is not None else _now()}
        message.update(fields)
        reply = json.loads(self._native.handle_event(json.dumps(message)))
        outcome = reply["outcome"]
        return Outcome(
            state=reply["state"],
            transitions=outcome["transitions"],
            effects=outcome["effects"],
            first_turn=outcome.get("first_turn"),
            digest=outcome.get("digest"),
            next_deadline=_parse(reply["next_deadline"]),
        )

    def boot(self, at: datetime | None = None) -> Outcome:
        """The daemon started: a night the last process left is walked back to WAKE."""
        return self._event("boot", at)

    def tick(self, store_empty: bool = False, at: datetime | None = None) -> Outcome:
        """The scheduler's tick; ``store_empty`` says there is nothing to consolidate."""
        return self._event("tick", at, store_empty=bool(store_empty))

    def session_started(self, session_id: str | None = None, at: datetime | None = None) -> Outcome:
        """A client session opened (its first turn is marked)."""
        return self._event("session_open", at, session_id=session_id)

    def recall(self, session_id: str | None = None, at: datetime | None = None) -> Outcome:
        """A client recalled memory: consumes the session's first turn; may deliver the digest."""
        return self._event("recall", at, session_id=session_id)

    def lock_acquired(self, at: datetime | None = None) -> Outcome:
        """The host took the lock the engine asked for."""
        return self._event("lock_acquired", at)

    def lock_denied(self, at: datetime | None = None) -> Outcome:
        """The host could not take the lock."""
        return self._event("lock_denied", at)

    def lock_lost(self, at: datetime | None = None) -> Outcome:
        """A client took the lock back during the night."""
        return self._event("lock_lost", at)

    def mcp_activity(self, at: datetime | None = None) -> Outcome:
        """A client talked to the host."""
        return self._event("mcp_activity", at)

    def rem_cycle_finished(
        self,
        summaries_created: int = 0,
        schema_candidates: int = 0,
        claude_call_used: bool = False,
        main_insight_text: str | None = None,
        timed_out: bool = False,
        at: datetime | None = None,
    ) -> Outcome:
        """The REM cycle the engine asked for finished, with what it produced."""
        result = {
            "summaries_created": int(summaries_created),
            "schema_candidates": int(schema_candidates),
            "claude_call_used": bool(claude_call_used),
            "main_insight_text": main_insight_text,
            "timed_out": bool(timed_out),
        }
        return self._event("rem_cycle_finished", at, result=result)

    def user_sleep(self, reason: str = "", at: datetime | None = None) -> Outcome:
        """The user asked the daemon to sleep now."""
        return self._event("user_initiated_sleep", at, reason=str(reason))

    def force_rem(self, at: datetime | None = None) -> Outcome:
        """The operator asked for one REM cycle now."""
        return self._event("force_rem", at)

    def force_wake(self, at: datetime | None = None) -> Outcome:
        """The operator asked the night to end at the next cycle boundary."""
        return self._event("force_wake", at)

    def pause(self, at: datetime | None = None) -> Outcome:
        """The operator paused the scheduler."""
        return self._event("pause", at)

    def resume(self, at: datetime | None = None) -> Outcome:
        """The operator resumed the scheduler."""
        return self._event("resume", at)

    def shutdown(self, at: datetime | None = None) -> Outcome:
        """The daemon is stopping: a running night is walked back to WAKE first."""
        return self._event("shutdown", at)

    # -- the rest -----------------------------------------------------------------------------

    def handle(self, message: dict[str, Any]) -> dict[str, Any]:
        """The ``serve`` protocol in-process: the same messages, the same replies
        (see ``PROTOCOL.md``)."""
        reply = self._native.handle_protocol(json.dumps(message))
        return {} if reply is None else json.loads(reply)

    @property
    def state(self) -> str:
        """The current state: ``"WAKE"``, ``"TRANSITIONING"``, ``"SLEEP"`` or ``"DREAMING"``."""
        return self._native.state

    def status(self, at: datetime | None = None) -> dict[str, Any]:
        """A summary of the state for people and tools (as ``daemon-state status --json``)."""
        return json.loads(self._native.status(_moment(at)))

    def next_deadline(self, at: datetime | None = None) -> datetime | None:
        """When the host must tick next, seen from ``at`` (now by default); ``None`` when nothing
        is due until another event."""
        return _parse(self._native.next_deadline(_moment(at)))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()

