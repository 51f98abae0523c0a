"""A drop-in replacement for the original ``daemon_state`` module, on the durable write path.

Existing callers keep their code and change one import::

    # before
    from iai_mcp import daemon_state
    # after
    from daemon_state import compat as daemon_state

The module offers the original's public names with the same signatures, defaults, constants and
return values: ``STATE_PATH``, ``DIGEST_SHOW_THRESHOLD_HOURS``, ``FIRST_TURN_TTL_HOURS``,
``MAX_FIRST_TURN_ENTRIES``, ``FIRST_TURN_PENDING_TTL_SEC_DEFAULT``, ``load_state``,
``save_state``, ``prune_stale_first_turn``, ``mark_session_opened``, ``consume_first_turn``,
``prune_first_turn_pending`` and ``get_pending_digest``. The functions work on the caller's own
``dict`` in place, as before, and the file stays readable and writable by the original module.

It is a thin Python module on purpose: functions that read or write the file call
``load_state()`` / ``save_state()`` through this module's globals, and those look up
``STATE_PATH`` when they run, so tests may patch ``compat.STATE_PATH``, ``compat.save_state``
and ``compat.load_state`` as they patched the original.

What is different (each a deliberate fix):

* ``save_state`` writes through the Rust store: a temp file created 0600 in the same
  directory, fsync, the previous file kept as ``NAME.prev``, rename, directory fsync, all under
  the file's exclusive lock. Missing parent directories are created 0700. It raises
  :class:`TypeError` for values JSON cannot hold (as ``json.dump`` does) and
  :class:`daemon_state.errors.StateFileError` when the file cannot be written; the old file is
  then intact. The store records a ``generation`` counter in the file.
* ``load_state`` never turns a corrupt file into ``{}``: the file is moved aside to a
  quarantine name and ``NAME.prev`` (the last good save) is used, with a logged warning. A
  missing file still gives ``{}``. A file that cannot be read at all raises
  :class:`~daemon_state.errors.StateFileError` instead of passing for empty. The store's own
  ``generation`` key is hidden from the returned dict (the next save keeps counting above it),
  so ``load_state()`` right after ``save_state(d)`` returns a dict equal to ``d``.
* ``mark_session_opened`` clips session ids to 128 characters, moves a re-opened session to the
  end (the newest opening), and replaces a ``first_turn_pending`` that is not a dict with a
  new one instead of failing. ``consume_first_turn`` clips the id the same way, so a long id
  finds its own mark.
* ``prune_stale_first_turn``: when the cap applies, equal timestamps keep the most recently
  opened session (the original evicted the one it had just opened), a timestamp in the future
  ranks as ``now``, and the survivors stay in their order in the same dict.
* ``get_pending_digest``: the digest is removed from the caller's dict only once the save has
  succeeded (if ``save_state`` raises, the dict is left as it was and the error propagates),
  and a ``last_digest_shown_at`` later than ``now`` (the clock went back) no longer withholds
  the digest.
* Timestamps ending in ``Z`` are read on every Python version.

Locked read-modify-write. The original had no way to update the file without racing other
writers. :func:`locked_state` takes the state file's exclusive lock (waiting for it), loads the
dict (with ``generation`` hidden, as ``load_state`` does), yields it, and when the block ends
normally saves it durably while still holding the lock. When the block raises, nothing is saved
and the exception propagates. The lock is released in every case::

    with compat.locked_state() as state:
        state["counter"] = state.get("counter", 0) + 1

Inside the block, work on the yielded dict: a ``load_state``, ``save_state`` or nested
``locked_state`` of the same file from the same thread raises ``StateFileError`` instead of
waiting for its own lock.
"""

from __future__ import annotations

import json
import logging
import os
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

from . import _native
from .errors import StateFileError

__all__ = [
    "STATE_PATH",
    "DIGEST_SHOW_THRESHOLD_HOURS",
    "FIRST_TURN_TTL_HOURS",
    "MAX_FIRST_TURN_ENTRIES",
    "FIRST_TURN_PENDING_TTL_SEC_DEFAULT",
    "MAX_SESSION_ID_CHARS",
    "load_state",
    "save_state",
    "prune_stale_first_turn",
    "mark_session_opened",
    "consume_first_turn",
    "prune_first_turn_pending",
    "get_pending_digest",
    "locked_state",
]

_log = logging.getLogger(__name__)

STATE_PATH: Path = Path.home() / ".iai-mcp" / ".daemon-state.json"

# The morning digest is surfaced only when at least this many hours have passed since it was
# last shown (or it has never been shown).
DIGEST_SHOW_THRESHOLD_HOURS: int = 18

# A first-turn mark older than this is dropped by the prune on session open, and the map is
# capped at this many entries, newest first.
FIRST_TURN_TTL_HOURS: int = 24
MAX_FIRST_TURN_ENTRIES: int = 100

# The time to live of the per-tick and startup reaper, in seconds.
FIRST_TURN_PENDING_TTL_SEC_DEFAULT: float = 3600.0

# Session ids are clipped to this many characters.
MAX_SESSION_ID_CHARS: int = 128

# The key the store keeps in the file for itself.
_GENERATION_KEY = "generation"

_EPOCH = datetime.fromtimestamp(0, tz=timezone.utc)

def _key(path: str | os.PathLike[str]) -> str:
    """The path the native store knows a state file by: one spelling per file, so that threads
    take turns on it and a nested use in the thread holding ``locked_state`` is refused (the
    native module does both, and opens the file anew in a forked child)."""
    return os.path.abspath(os.fspath(path))


def _utcnow() -> datetime:
    """The current moment, aware, in UTC (one place, so that tests can fix the clock)."""
    return datetime.now(timezone.utc)


def _aware(moment: datetime) -> datetime:
    """A naive moment is taken as UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _parse_iso(text: str) -> datetime:
    """``datetime.fromisoformat``, also reading a trailing ``Z``; a naive result is taken as UTC.

    Raises :class:`ValueError` for text that is no timestamp, and :class:`TypeError` for a value
    that is not a string, as ``fromisoformat`` does.
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        if isinstance(text, str) and text[-1:] in ("Z", "z"):
            moment = datetime.fromisoformat(text[:-1] + "+00:00")
        else:
            raise
    return _aware(moment)


def _clip(session_id: str) -> str:
    return session_id[:MAX_SESSION_ID_CHARS]


def _decode(text: str | None, path: str) -> dict:
    """The dict a document's JSON text holds, without the store's ``generation`` key."""
    if text is None:
        return {}
    try:
        state = json.loads(text)
    except ValueError as error:
        raise StateFileError(f"{path}: the state file is not valid JSON: {error}", path) from None
    if not isinstance(state, dict):
        # The store quarantines such a file; seeing one here means the file changed under us.
        raise StateFileError(f"{path}: the state file does not hold a JSON object", path)
    state.pop(_GENERATION_KEY, None)
    return state


def load_state() -> dict:
    """Read the state file; ``{}`` when it is missing.

    **fix**: a corrupt file (bad JSON, bad UTF-8, not an object) is never read as ``{}``: it is
    moved aside to a quarantine name and the previous good save (``NAME.prev``) is used instead,
    with a logged warning; only when there is none is the result ``{}``. A file that cannot be
    read (permissions, I/O, a directory in its place) raises
    :class:`~daemon_state.errors.StateFileError`. The store's own ``generation`` key is not part
    of the returned dict. Loading never creates the state file's directory.
    """
    target = Path(STATE_PATH)
    if not target.parent.is_dir():
        # No file can be there: answer as the original did, without creating the directory.
        return {}
    path = _key(target)
    text, note = _native.load_document(path)
    if note:
        _log.warning("%s", note)
    return _decode(text, path)


def save_state(state: dict) -> None:
    """Durably persist ``state`` to ``STATE_PATH``.

    **fix**: written through the Rust store, under the file's exclusive lock: a temp file
    created 0600 in the same directory, fsync, the previous file kept as ``NAME.prev``, an atomic
    rename, then an fsync of the directory. Missing parent directories are created (0700). On
    any error the temp file is removed and the old file is intact. Raises :class:`TypeError` for
    values JSON cannot hold and :class:`~daemon_state.errors.StateFileError` on I/O errors.
    """
    _native.save_document(_key(STATE_PATH), state)


def prune_stale_first_turn(
    state: dict,
    now: datetime | None = None,
    ttl_hours: int = FIRST_TURN_TTL_HOURS,
    max_entries: int = MAX_FIRST_TURN_ENTRIES,
) -> int:
    """Evict first_turn_pending entries older than ``ttl_hours`` and cap the dict at
    ``max_entries`` (keep newest by timestamp). Returns the number of entries removed.

    Legacy values (``True`` / ``False`` / anything not a string) and malformed strings count as
    the epoch, so they are evicted. A surviving non-string is stored as the epoch's ISO text.
    Idempotent; safe to call on every save.

    **fix**: when the cap applies, equal timestamps keep the later entry in the dict (the most
    recently opened session; the original evicted the one just opened), a timestamp after
    ``now`` ranks as ``now`` (marks made while the clock ran ahead do not evict every new mark),
    and the survivors keep their order in the same dict object.
    """
    pending = state.get("first_turn_pending")
    if not isinstance(pending, dict) or not pending:
        return 0

    current = _aware(now) if now is not None else _utcnow()
    cutoff = current - timedelta(hours=ttl_hours)

    def _as_dt(value: object) -> datetime:
        if isinstance(value, str):
            try:
                return _parse_iso(value)
            except ValueError:
                return _EPOCH
        return _EPOCH

    removed = 0
    for sid, value in list(pending.items()):
        dt = _as_dt(value)
        if dt < cutoff:
            pending.pop(sid, None)
            removed += 1
        elif not isinstance(value, str):
            pending[sid] = dt.isoformat()

    if len(pending) > max_entries:
        ranked = sorted(
            (
                (min(_as_dt(value), current), position, sid)
                for position, (sid, value) in enumerate(pending.items())
            ),
            key=lambda item: (item[0], item[1]),
            reverse=True,
        )
        for _, _, sid in ranked[max_entries:]:
            pending.pop(sid, None)
            removed += 1

    return removed


def mark_session_opened(state: dict, session_id: str) -> None:
    """Mark ``first_turn_pending`` for a session, with the current UTC time as its value, then
    prune with ``FIRST_TURN_TTL_HOURS`` and ``MAX_FIRST_TURN_ENTRIES``.

    A non-string or empty id marks nothing. Persistence is the caller's responsibility.

    **fix**: the id is clipped to ``MAX_SESSION_ID_CHARS`` (128) characters; a re-opened session
    moves to the end of the dict (its newest opening), so the cap never evicts the session just
    opened in favour of one opened at the same moment; a ``first_turn_pending`` that is not a
    dict is replaced by a new one (the original raised).
    """
    if not isinstance(session_id, str) or not session_id:
        return
    sid = _clip(session_id)
    pending = state.get("first_turn_pending")
    if not isinstance(pending, dict):
        pending = {}
        state["first_turn_pending"] = pending
    now = _utcnow()
    pending.pop(sid, None)
    pending[sid] = now.isoformat()
    prune_stale_first_turn(state, now)


def consume_first_turn(state: dict, session_id: str) -> bool:
    """Return True iff this is the session's first call; pops the mark and saves.

    A timestamp or a legacy truthy value (``True``) counts as a mark; a falsy one (``False``,
    ``None``, ``""``) is popped but gives False. The state is saved (through ``save_state``)
    only when the answer is True, and a failed save is ignored: the hook still fires exactly
    once in this process. Never raises.

    **fix**: the id is clipped to 128 characters as ``mark_session_opened`` clips it (an exact
    key already in the dict is still found first).
    """
    try:
        pending = state.get("first_turn_pending")
        if not isinstance(pending, dict):
            return False
        key = session_id
        if key not in pending and isinstance(key, str):
            key = _clip(key)
        if pending.pop(key, False):
            try:
                save_state(state)
            except Exception:
                # Non-fatal: the hook still fires exactly once in-process.
                pass
            return True
        return False
    except Exception:
        return False


def prune_first_turn_pending(
    state: dict,
    now: datetime | None = None,
    ttl_sec: float = FIRST_TURN_PENDING_TTL_SEC_DEFAULT,
) -> tuple[dict, list[str]]:
    """Drain stale ``first_turn_pending`` entries (the per-tick and startup reaper).

    Returns ``(state, dropped_session_ids)``: the same dict object, and the dropped ids in dict
    order. Pure: it neither saves nor emits events; the caller decides.

    Eviction rules:

    - a string is parsed as an ISO timestamp (naive means UTC) and the entry is dropped only
      when it is strictly older than ``ttl_sec`` (an entry exactly ``ttl_sec`` old stays);
    - a malformed string or a non-string value (legacy bool, dict, None, number) is dropped;
    - surviving strings are kept verbatim, in order, in a new ``first_turn_pending`` dict.
    """
    pending = state.get("first_turn_pending")
    if not isinstance(pending, dict) or not pending:
        return state, []

    current = _aware(now) if now is not None else _utcnow()
    cutoff = current - timedelta(seconds=ttl_sec)

    dropped: list[str] = []
    fresh: dict = {}
    for sid, value in pending.items():
        if isinstance(value, str):
            try:
                ts = _parse_iso(value)
            except ValueError:
                dropped.append(sid)
                continue
            if ts < cutoff:
                dropped.append(sid)
                continue
            fresh[sid] = value
        else:
            dropped.append(sid)

    state["first_turn_pending"] = fresh
    return state, dropped


def get_pending_digest(state: dict, now: datetime) -> dict | None:
    """Return the pending morning digest if eligible, else None.

    Eligible when at least ``DIGEST_SHOW_THRESHOLD_HOURS`` have passed since
    ``last_digest_shown_at`` (exactly 18 h delivers) or it was never shown; a malformed or
    non-string ``last_digest_shown_at`` counts as never shown. An empty or missing digest gives
    None and writes nothing. When delivered, ``pending_digest`` is removed,
    ``last_digest_shown_at`` is set to ``now`` (naive means UTC) and the state is saved through
    ``save_state``, so the same digest never appears twice.

    **fix**: the digest leaves the caller's dict only once ``save_state`` has succeeded; when it
    raises, the dict is unchanged and the error propagates (the digest is delivered later).
    **fix**: a ``last_digest_shown_at`` later than ``now`` (the clock went back) does not
    withhold the digest.
    """
    last_shown = state.get("last_digest_shown_at")
    if last_shown:
        try:
            last_dt = _parse_iso(last_shown)
            now_cmp = _aware(now)
            if last_dt <= now_cmp and now_cmp - last_dt < timedelta(
                hours=DIGEST_SHOW_THRESHOLD_HOURS
            ):
                return None
        except (TypeError, ValueError):
            # Malformed timestamp: treat as never shown.
            pass

    digest = state.get("pending_digest")
    if not digest:
        return None

    shown_at = _aware(now).isoformat()
    snapshot = {key: value for key, value in state.items() if key != "pending_digest"}
    snapshot["last_digest_shown_at"] = shown_at
    save_state(snapshot)
    state["last_digest_shown_at"] = shown_at
    state.pop("pending_digest", None)
    return digest


@contextmanager
def locked_state(path: str | os.PathLike[str] | None = None) -> Iterator[dict]:
    """A locked read-modify-write of the state file.

    Takes the file's exclusive lock (waiting for it), loads the dict (``{}`` when the file is
    missing; the store's ``generation`` key hidden, as in ``load_state``) and yields it. When
    the block ends normally, the dict is saved durably under the same lock. When it raises,
    nothing is saved and the exception propagates. The lock is released in every case.

    ``path`` defaults to ``STATE_PATH`` as it is when the block is entered.

    Not re-entrant: inside the block, work on the yielded dict. A nested ``locked_state``,
    ``load_state`` or ``save_state`` of the same file in the same thread raises
    :class:`~daemon_state.errors.StateFileError` rather than wait for its own lock (functions
    that save through ``save_state``, such as ``consume_first_turn``, still change the dict,
    which the block saves when it ends). Other threads and processes wait for the lock.
    """
    target = _key(STATE_PATH if path is None else path)
    locked = _native.LockedFile(target)
    try:
        state = _decode(locked.acquire(), target)
        yield state
        locked.commit(state)
    finally:
        locked.release()
