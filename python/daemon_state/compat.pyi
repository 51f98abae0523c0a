import os
from contextlib import AbstractContextManager
from datetime import datetime
from pathlib import Path
from typing import Any

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

STATE_PATH: Path
DIGEST_SHOW_THRESHOLD_HOURS: int
FIRST_TURN_TTL_HOURS: int
MAX_FIRST_TURN_ENTRIES: int
FIRST_TURN_PENDING_TTL_SEC_DEFAULT: float
MAX_SESSION_ID_CHARS: int

def load_state() -> dict[str, Any]: ...
def save_state(state: dict[str, Any]) -> None: ...
def prune_stale_first_turn(
    state: dict[str, Any],
    now: datetime | None = None,
    ttl_hours: int = 24,
    max_entries: int = 100,
) -> int: ...
def mark_session_opened(state: dict[str, Any], session_id: str) -> None: ...
def consume_first_turn(state: dict[str, Any], session_id: str) -> bool: ...
def prune_first_turn_pending(
    state: dict[str, Any],
    now: datetime | None = None,
    ttl_sec: float = 3600.0,
) -> tuple[dict[str, Any], list[str]]: ...
def get_pending_digest(state: dict[str, Any], now: datetime) -> dict[str, Any] | None: ...
def locked_state(
    path: str | os.PathLike[str] | None = None,
) -> AbstractContextManager[dict[str, Any]]: ...
