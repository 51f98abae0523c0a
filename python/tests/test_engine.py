"""``daemon_state.Engine``: the event methods, ``handle``, errors, the state file, threads, and the
file shared with the Rust CLI and the original module."""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import stat
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import original_daemon_state
import pytest

import daemon_state
from daemon_state import DaemonStateError, Engine, Outcome, Rejected, StateFileError, _native, compat

UTC = timezone.utc
REPO = Path(__file__).resolve().parents[2]


def at(hour: int, minute: int = 0, second: int = 0, day: int = 18) -> datetime:
    return datetime(2026, 4, day, hour, minute, second, tzinfo=UTC)


def iso(hour: int, minute: int = 0, second: int = 0, day: int = 18) -> str:
    return at(hour, minute, second, day).isoformat()


def move(source: str, target: str, reason: str, when: str) -> dict:
    return {"from": source, "to": target, "reason": reason, "at": when}


def run_cycle(n: int, of: int = 4) -> dict:
    return {"effect": "run_rem_cycle", "cycle": n, "of": of, "is_last": n == of}


ACQUIRE = {"effect": "acquire_lock"}
RELEASE = {"effect": "release_lock"}


def yielded(reason: str, completed: int) -> dict:
    return {
        "effect": "emit",
        "kind": "daemon_yielded",
        "payload": {"reason": reason, "completed_cycles": completed},
        "severity": "info",
    }


@pytest.fixture
def private_dir(tmp_path: Path) -> Path:
    """A directory only its owner can write to (the store refuses any other)."""
    path = tmp_path / "private"
    path.mkdir()
    os.chmod(path, 0o700)
    return path


@pytest.fixture
def state_file(private_dir: Path) -> Path:
    return private_dir / "state.json"


def generation(path: Path) -> int:
    return json.loads(path.read_text())["generation"]


def start_night(engine: Engine) -> Outcome:
    """Boot and a session at 09:00; the tick at 11:01 asks for the lock."""
    engine.boot(at=at(9))
    engine.session_started("s1", at=at(9))
    outcome = engine.tick(at=at(11, 1))
    assert outcome.state == "TRANSITIONING"
    return outcome


def dreaming(engine: Engine) -> None:
    start_night(engine)
    outcome = engine.lock_acquired(at=at(11, 2))
    assert outcome.effects == [run_cycle(1)]
    assert engine.state == "DREAMING"


# --- the events ------------------------------------------------------------------------------


def test_a_full_night(state_file: Path):
    engine = Engine(state_file)

    boot = engine.boot(at=at(9))
    assert boot == Outcome(state="WAKE", transitions=[], effects=[], next_deadline=at(9))

    opened = engine.session_started("s1", at=at(9))
    assert (opened.state, opened.transitions, opened.effects) == ("WAKE", [], [])
    assert opened.first_turn is None and opened.digest is None

    # Nothing to do yet; the next deadline is the first turn's expiry, one hour on.
    early = engine.tick(at=at(9, 0, 30))
    assert (early.transitions, early.effects) == ([], [])
    assert early.next_deadline == at(10) + timedelta(microseconds=1)

    first = engine.recall("s1", at=at(9, 1))
    assert (first.first_turn, first.digest) == (True, None)
    assert first.next_deadline == at(11)  # two hours after the session
    again = engine.recall("s1", at=at(9, 2))
    assert (again.first_turn, again.digest) == (False, None)

    still = engine.tick(at=at(10))
    assert (still.state, still.transitions, still.effects) == ("WAKE", [], [])
    assert still.next_deadline == at(11)

    tick = engine.tick(at=at(11, 1))
    assert tick.state == engine.state == "TRANSITIONING"
    assert tick.transitions == [move("WAKE", "TRANSITIONING", "idle", iso(11, 1))]
    assert tick.effects == [ACQUIRE]
    assert tick.next_deadline == at(11, 6)  # the lock wait times out after 5 min

    acquired = engine.lock_acquired(at=at(11, 1, 1))
    assert acquired.state == "DREAMING"
    assert acquired.transitions == [
        move("TRANSITIONING", "SLEEP", "lock_acquired", iso(11, 1, 1)),
        move("SLEEP", "DREAMING", "next_cycle", iso(11, 1, 1)),
    ]
    assert acquired.effects == [{"effect": "run_rem_cycle", "cycle": 1, "of": 4, "is_last": False}]
    assert acquired.next_deadline is None

    for cycle in (2, 3, 4):
        done = engine.rem_cycle_finished(
            summaries_created=2,
            schema_candidates=1,
            claude_call_used=cycle == 2,
            main_insight_text="links" if cycle == 2 else None,
            at=at(11, 10 * cycle),
        )
        assert done.state == "DREAMING"
        assert done.transitions == [
            move("DREAMING", "SLEEP", "rem_cycle_finished", iso(11, 10 * cycle)),
            move("SLEEP", "DREAMING", "next_cycle", iso(11, 10 * cycle)),
        ]
        assert done.effects == [run_cycle(cycle)]
        assert done.next_deadline is None

    last = engine.rem_cycle_finished(summaries_created=1, timed_out=True, at=at(12))
    assert last.state == engine.state == "WAKE"
    assert last.transitions == [
        move("DREAMING", "SLEEP", "rem_cycle_finished", iso(12)),
        move("SLEEP", "WAKE", "cycles_done", iso(12)),
    ]
    assert last.effects == [RELEASE]
    # Next: relearning the quiet window, a day after the first tick learned it.
    assert last.next_deadline == at(9, 0, 30, day=19)
    assert engine.status(at=at(12))["pending_digest"] == {
        "rem_cycles_completed": 4,
        "episodes_processed": 7,
        "schemas_induced_tier0": 3,
        "claude_call_used": True,
    }

    # The next session's first recall delivers the digest, once.
    engine.session_started("s2", at=at(12, 5))
    delivered = engine.recall("s2", at=at(12, 6))
    assert delivered.first_turn is True
    assert delivered.digest == {
        "rem_cycles_completed": 4,
        "episodes_processed": 7,
        "schemas_induced_tier0": 3,
        "claude_call_used": True,
        "main_insight_text": "links",
        "timed_out_cycles": 1,
    }
    assert engine.recall("s2", at=at(12, 7)).digest is None
    engine.session_started("s3", at=at(12, 8))
    other = engine.recall("s3", at=at(12, 9))
    assert (other.first_turn, other.digest) == (True, None)
    assert engine.status(at=at(12, 9))["pending_digest"] is None

    down = engine.shutdown(at=at(12, 10))
    assert (down.state, down.transitions, down.effects) == ("WAKE", [], [])


def test_lock_denied_yields_back_to_wake():
    engine = Engine.in_memory()
    start_night(engine)
    denied = engine.lock_denied(at=at(11, 1, 1))
    assert denied.state == engine.state == "WAKE"
    assert denied.transitions == [move("TRANSITIONING", "WAKE", "lock_denied", iso(11, 1, 1))]
    assert denied.effects == [yielded("mcp_active", 0), RELEASE]
    assert denied.next_deadline == at(11, 6, 1)
    # The night is retried only after the back-off.
    assert engine.tick(at=at(11, 2)).state == "WAKE"
    retry = engine.tick(at=at(11, 7))
    assert retry.transitions == [move("WAKE", "TRANSITIONING", "idle", iso(11, 7))]
    assert retry.effects == [ACQUIRE]


def test_a_paused_tick_starts_no_night():
    engine = Engine.in_memory()
    engine.boot(at=at(9))
    engine.session_started("s1", at=at(9))
    paused = engine.pause(at=at(9, 5))
    assert (paused.state, paused.transitions, paused.effects) == ("WAKE", [], [])
    assert engine.status(at=at(9, 5))["paused"] is True

    skipped = engine.tick(at=at(11, 1))
    assert skipped.state == "WAKE"
    assert skipped.transitions == []
    assert skipped.effects[-1] == {
        "effect": "emit",
        "kind": "daemon_tick_skipped",
        "payload": {"reason": "paused"},
        "severity": "info",
    }
    assert skipped.next_deadline is None  # nothing is due while paused
    assert engine.status(at=at(11, 1))["last_tick_skipped_reason"] == "paused"

    resumed = engine.resume(at=at(12, 1))
    assert (resumed.state, resumed.transitions, resumed.effects) == ("WAKE", [], [])
    assert resumed.next_deadline == at(12, 1)
    assert engine.status(at=at(12, 1))["paused"] is False
    tick = engine.tick(at=at(12, 2))
    assert tick.transitions == [move("WAKE", "TRANSITIONING", "idle", iso(12, 2))]
    assert tick.effects == [ACQUIRE]


def test_tick_with_an_empty_store_starts_no_night():
    engine = Engine.in_memory()
    engine.boot(at=at(9))
    engine.session_started("s1", at=at(9))
    empty = engine.tick(store_empty=True, at=at(11, 1))
    assert (empty.state, empty.transitions) == ("WAKE", [])
    assert ACQUIRE not in empty.effects
    assert engine.status(at=at(11, 1))["last_tick_skipped_reason"] == "empty_store"
    assert engine.tick(store_empty=False, at=at(11, 2)).effects == [ACQUIRE]


def test_user_sleep_then_tick_starts_a_night():
    engine = Engine.in_memory()
    engine.boot(at=at(9))
    asked = engine.user_sleep("bed", at=at(9, 10))
    assert (asked.state, asked.transitions, asked.effects) == ("WAKE", [], [])
    assert asked.next_deadline == at(9, 10)  # tick now
    assert engine.status(at=at(9, 10))["requests"]["user_sleep"] is True

    tick = engine.tick(at=at(9, 10, 30))
    assert tick.state == "TRANSITIONING"
    assert tick.transitions == [
        move("WAKE", "TRANSITIONING", "user_sleep_request", iso(9, 10, 30))
    ]
    assert tick.effects == [ACQUIRE]
    assert engine.lock_acquired(at=at(9, 11)).effects == [run_cycle(1, 4)]
    with pytest.raises(Rejected) as refused:
        engine.user_sleep("again", at=at(9, 12))
    assert refused.value.state == "DREAMING"


def test_force_rem_plans_one_cycle():
    engine = Engine.in_memory()
    engine.boot(at=at(9))
    queued = engine.force_rem(at=at(9, 10))
    assert (queued.state, queued.transitions, queued.effects) == ("WAKE", [], [])
    assert engine.status(at=at(9, 10))["requests"]["force_rem"] is True

    tick = engine.tick(at=at(9, 10, 30))
    assert tick.transitions == [move("WAKE", "TRANSITIONING", "force_rem_request", iso(9, 10, 30))]
    acquired = engine.lock_acquired(at=at(9, 11))
    assert acquired.effects == [{"effect": "run_rem_cycle", "cycle": 1, "of": 1, "is_last": True}]
    done = engine.rem_cycle_finished(at=at(9, 20))
    assert done.state == "WAKE"
    assert done.transitions[-1] == move("SLEEP", "WAKE", "cycles_done", iso(9, 20))
    assert done.effects == [RELEASE]
    assert engine.status(at=at(9, 20))["requests"]["force_rem"] is False


def test_force_wake_ends_the_night_at_the_next_boundary():
    engine = Engine.in_memory()
    dreaming(engine)
    queued = engine.force_wake(at=at(11, 5))
    assert (queued.state, queued.transitions, queued.effects) == ("DREAMING", [], [])
    done = engine.rem_cycle_finished(summaries_created=1, at=at(11, 10))
    assert done.state == "WAKE"
    assert done.transitions == [
        move("DREAMING", "SLEEP", "rem_cycle_finished", iso(11, 10)),
        move("SLEEP", "WAKE", "force_wake_requested", iso(11, 10)),
    ]
    assert done.effects == [yielded("force_wake_requested", 1), RELEASE]
    status = engine.status(at=at(11, 10))
    assert status["requests"]["force_wake"] is False
    assert status["pending_digest"]["rem_cycles_completed"] == 1


def test_shutdown_mid_night_walks_back_to_wake(state_file: Path):
    engine = Engine(state_file)
    dreaming(engine)
    down = engine.shutdown(at=at(11, 5))
    assert down.state == engine.state == "WAKE"
    assert down.transitions == [
        move("DREAMING", "SLEEP", "shutdown", iso(11, 5)),
        move("SLEEP", "WAKE", "wound_down", iso(11, 5)),
    ]
    assert down.effects == [RELEASE]
    assert json.loads(state_file.read_text())["fsm_state"] == "WAKE"


def test_shutdown_while_waiting_for_the_lock():
    engine = Engine.in_memory()
    start_night(engine)
    down = engine.shutdown(at=at(11, 5))
    assert down.transitions == [move("TRANSITIONING", "WAKE", "shutdown", iso(11, 5))]
    assert down.effects == [RELEASE]


def test_boot_recovers_a_night_left_running(state_file: Path):
    dreaming(Engine(state_file))
    engine = Engine(state_file)  # a new process finds the night
    assert engine.state == "DREAMING"
    boot = engine.boot(at=at(11, 5))
    assert boot.state == "WAKE"
    assert boot.transitions == [
        move("DREAMING", "SLEEP", "recovered", iso(11, 5)),
        move("SLEEP", "WAKE", "wound_down", iso(11, 5)),
    ]
    assert boot.effects == [
        {
            "effect": "emit",
            "kind": "fsm_recovered",
            "payload": {"found": "DREAMING", "at": iso(11, 5)},
            "severity": "warning",
        },
        RELEASE,
    ]


def test_lock_lost_yields_at_the_next_boundary():
    engine = Engine.in_memory()
    dreaming(engine)
    lost = engine.lock_lost(at=at(11, 5))
    assert (lost.state, lost.transitions, lost.effects) == ("DREAMING", [], [])
    done = engine.rem_cycle_finished(at=at(11, 10))
    assert done.state == "WAKE"
    assert done.transitions == [
        move("DREAMING", "SLEEP", "rem_cycle_finished", iso(11, 10)),
        move("SLEEP", "WAKE", "mcp_reacquired_mid_night", iso(11, 10)),
    ]
    assert done.effects == [yielded("mcp_reacquired_mid_night", 1), RELEASE]


def test_recent_mcp_activity_yields_at_the_next_boundary():
    engine = Engine.in_memory()
    dreaming(engine)
    seen = engine.mcp_activity(at=at(11, 9, 45))
    assert (seen.state, seen.transitions, seen.effects) == ("DREAMING", [], [])
    done = engine.rem_cycle_finished(at=at(11, 10))  # 15 s after the activity
    assert done.state == "WAKE"
    assert done.transitions == [
        move("DREAMING", "SLEEP", "rem_cycle_finished", iso(11, 10)),
        move("SLEEP", "WAKE", "mcp_recent_activity", iso(11, 10)),
    ]
    assert done.effects == [yielded("mcp_recent_activity", 1), RELEASE]


def test_old_mcp_activity_lets_the_night_go_on():
    engine = Engine.in_memory()
    dreaming(engine)
    engine.mcp_activity(at=at(11, 5))
    done = engine.rem_cycle_finished(at=at(11, 10))  # 5 min later: no longer recent
    assert done.state == "DREAMING"
    assert done.effects == [run_cycle(2)]


def test_mcp_activity_in_wake_changes_nothing():
    engine = Engine.in_memory()
    engine.boot(at=at(9))
    outcome = engine.mcp_activity(at=at(9, 5))
    assert (outcome.state, outcome.transitions, outcome.effects) == ("WAKE", [], [])


# --- moments -------------------------------------------------------------------------------


def drive(engine: Engine, moment) -> list[Outcome]:
    return [
        engine.boot(at=moment(9)),
        engine.session_started("s1", at=moment(9)),
        engine.recall("s1", at=moment(9, 1)),
        engine.tick(at=moment(11, 1)),
        engine.lock_acquired(at=moment(11, 2)),
    ]


def test_naive_datetimes_mean_utc():
    naive = drive(Engine.in_memory(), lambda *a: at(*a).replace(tzinfo=None))
    aware = drive(Engine.in_memory(), at)
    assert naive == aware
    assert naive[3].transitions == [move("WAKE", "TRANSITIONING", "idle", "2026-04-18T11:01:00+00:00")]


def test_other_offsets_are_the_same_moment():
    plus2 = timezone(timedelta(hours=2))
    shifted = drive(Engine.in_memory(), lambda *a: at(*a).astimezone(plus2))
    assert shifted == drive(Engine.in_memory(), at)


@pytest.mark.parametrize("bad", ["2026-04-18T09:00:00Z", 1776502800, at(9).date()])
def test_a_moment_that_is_no_datetime_is_a_type_error(bad):
    engine = Engine.in_memory()
    with pytest.raises(TypeError, match="expected a datetime"):
        engine.boot(at=bad)
    with pytest.raises(TypeError):
        engine.tick(at=bad)
    with pytest.raises(TypeError):
        engine.status(at=bad)
    assert engine.status(at=at(9))["daemon_started_at"] is None  # nothing happened


# --- the serve protocol in-process -----------------------------------------------------------


def write_seed(path: Path, document: dict) -> None:
    path.write_text(json.dumps(document))
    os.chmod(path, 0o600)


def assert_replies(engine: Engine, exchanges: list[tuple[dict, dict]]) -> None:
    for request, expected in exchanges:
        reply = engine.handle(request)
        assert reply == expected, request
        assert list(reply) == list(expected), request  # the document's key order


def test_handle_the_refused_lock_example(state_file: Path):
    # PROTOCOL.md: "A night the host cannot have: the lock is refused, and the daemon yields."
    write_seed(
        state_file,
        {
            "fsm_state": "WAKE",
            "user_sleep_request": {"reason": "bed", "ts": "2026-04-18T22:00:00Z", "pending": True},
        },
    )
    engine = Engine(state_file)
    assert_replies(
        engine,
        [
            (
                {"type": "tick", "ts": "2026-04-18T22:00:30Z", "store_empty": False},
                {"ok": True, "state": "TRANSITIONING", "transitions": [{"from": "WAKE", "to": "TRANSITIONING", "reason": "user_sleep_request", "at": "2026-04-18T22:00:30+00:00"}], "effects": [{"effect": "acquire_lock"}], "next_deadline": "2026-04-18T22:05:30+00:00"},  # noqa: E501
            ),
            (
                {"type": "lock_denied", "ts": "2026-04-18T22:00:31Z"},
                {"ok": True, "state": "WAKE", "transitions": [{"from": "TRANSITIONING", "to": "WAKE", "reason": "lock_denied", "at": "2026-04-18T22:00:31+00:00"}], "effects": [{"effect": "emit", "kind": "daemon_yielded", "payload": {"reason": "mcp_active", "completed_cycles": 0}, "severity": "info"}, {"effect": "release_lock"}], "next_deadline": "2026-04-18T22:05:31+00:00"},  # noqa: E501
            ),
            (
                {"type": "lock_lost", "ts": "2026-04-18T22:01:00Z"},
                {"ok": False, "reason": "rejected", "state": "WAKE", "error": "lock_lost is not accepted in WAKE: no row for it in this state", "next_deadline": "2026-04-18T22:05:31+00:00"},  # noqa: E501
            ),
            (
                {"type": "tick", "ts": "2026-04-18T22:01:00Z", "store_empty": True},
                {"ok": True, "state": "WAKE", "transitions": [], "effects": [], "next_deadline": "2026-04-18T22:05:31+00:00"},  # noqa: E501
            ),
        ],
    )
    assert engine.state == "WAKE"


def test_handle_the_refused_messages_example(state_file: Path):
    # PROTOCOL.md: "What is refused, and why; nothing changes."
    write_seed(state_file, {"fsm_state": "WAKE"})
    engine = Engine(state_file)
    before = state_file.read_bytes()
    assert_replies(
        engine,
        [
            ({"type": 42}, {"ok": False, "reason": "invalid_message", "error": "type must be a string"}),
            (
                {"type": "nuke_from_orbit", "ts": "whatever"},
                {"ok": False, "reason": "unknown_message_type", "type": "nuke_from_orbit"},
            ),
            (
                {"type": "boot", "ts": "at dawn"},
                {"ok": False, "reason": "invalid_message", "error": "ts must be an RFC 3339 timestamp"},
            ),
            (
                {"type": "rem_cycle_finished", "summaries_created": 3},
                {"ok": False, "reason": "invalid_message", "error": "summaries_created is not a field of rem_cycle_finished: expected ts, result"},  # noqa: E501
            ),
            (
                {"type": "lock_acquired", "ts": "2026-04-18T12:00:00Z"},
                {"ok": False, "reason": "rejected", "state": "WAKE", "error": "lock_acquired is not accepted in WAKE: no row for it in this state", "next_deadline": "2026-04-18T12:00:00+00:00"},  # noqa: E501
            ),
        ],
    )
    assert state_file.read_bytes() == before


def test_handle_the_start_of_a_day():
    # PROTOCOL.md: the first block, from "none" (messages that carry their own ts).
    engine = Engine.in_memory()
    assert_replies(
        engine,
        [
            (
                {"type": "boot", "ts": "2026-04-18T09:00:00Z"},
                {"ok": True, "state": "WAKE", "transitions": [], "effects": [], "next_deadline": "2026-04-18T09:00:00+00:00"},  # noqa: E501
            ),
            (
                {"type": "session_open", "session_id": "sess-1", "ts": "2026-04-18T09:00:00Z"},
                {"ok": True, "reason": "session_open_queued"},
            ),
            (
                {"type": "tick", "ts": "2026-04-18T09:00:30Z"},
                {"ok": True, "state": "WAKE", "transitions": [], "effects": [], "next_deadline": "2026-04-18T10:00:00.000001+00:00"},  # noqa: E501
            ),
            (
                {"type": "recall", "session_id": "sess-1", "ts": "2026-04-18T09:01:00Z"},
                {"ok": True, "state": "WAKE", "transitions": [], "effects": [], "first_turn": True, "digest": None, "next_deadline": "2026-04-18T11:00:00+00:00"},  # noqa: E501
            ),
            (
                {"type": "tick", "ts": "2026-04-18T11:00:00Z"},
                {"ok": True, "state": "TRANSITIONING", "transitions": [{"from": "WAKE", "to": "TRANSITIONING", "reason": "idle", "at": "2026-04-18T11:00:00+00:00"}], "effects": [{"effect": "acquire_lock"}], "next_deadline": "2026-04-18T11:05:00+00:00"},  # noqa: E501
            ),
        ],
    )
    assert engine.state == "TRANSITIONING"


# --- errors ----------------------------------------------------------------------------------


def test_a_refused_event_raises_rejected_and_changes_nothing(state_file: Path):
    engine = Engine(state_file)
    engine.boot(at=at(9))
    written = state_file.read_bytes()
    with pytest.raises(Rejected) as caught:
        engine.lock_acquired(at=at(9, 1))
    error = caught.value
    assert isinstance(error, DaemonStateError)
    assert (error.state, error.event) == ("WAKE", "lock_acquired")
    assert str(error) == "lock_acquired is not accepted in WAKE: no row for it in this state"
    assert engine.state == "WAKE"
    assert state_file.read_bytes() == written
    copy = pickle.loads(pickle.dumps(error))
    assert (type(copy), str(copy), copy.state, copy.event) == (Rejected, str(error), "WAKE", "lock_acquired")


@pytest.mark.parametrize(
    "method, event",
    [
        ("lock_denied", "lock_denied"),
        ("lock_lost", "lock_lost"),
        ("rem_cycle_finished", "rem_cycle_finished"),
    ],
)
def test_events_refused_in_wake(method, event):
    engine = Engine.in_memory()
    engine.boot(at=at(9))
    with pytest.raises(Rejected) as caught:
        getattr(engine, method)(at=at(9, 1))
    assert (caught.value.state, caught.value.event) == ("WAKE", event)


def test_a_world_writable_directory_is_refused(private_dir: Path):
    shared = private_dir / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777)
    path = shared / "state.json"
    with pytest.raises(StateFileError) as caught:
        Engine(path)
    assert isinstance(caught.value, DaemonStateError)
    assert caught.value.path == str(path)
    assert "shared" in str(caught.value)
    assert not path.exists()


def test_a_parent_that_is_a_file_is_refused(private_dir: Path):
    blocker = private_dir / "not-a-dir"
    blocker.write_text("")
    path = blocker / "state.json"
    with pytest.raises(StateFileError) as caught:
        Engine(str(path))
    assert caught.value.path == str(path)


# --- the state file --------------------------------------------------------------------------


def test_tilde_is_expanded(private_dir: Path, monkeypatch):
    home = private_dir / "home"
    home.mkdir(mode=0o700)
    monkeypatch.setenv("HOME", str(home))
    engine = Engine("~/.iai-mcp/state.json")
    target = home / ".iai-mcp" / "state.json"
    assert repr(engine) == f"Engine(state='WAKE', path={str(target)!r})"
    assert not target.exists()
    engine.boot(at=at(9))
    assert target.is_file()
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert stat.S_IMODE(target.parent.stat().st_mode) == 0o700
    assert not (private_dir / "~").exists()


def test_engine_accepts_a_path_object(state_file: Path):
    Engine(state_file).boot(at=at(9))
    assert json.loads(state_file.read_text())["daemon_started_at"] == iso(9)


def test_state_persists_across_engines(state_file: Path):
    first = Engine(state_file)
    start_night(first)
    first.lock_acquired(at=at(11, 2))
    assert stat.S_IMODE(state_file.stat().st_mode) == 0o600

    second = Engine(state_file)
    assert second.state == "DREAMING"
    status = second.status(at=at(11, 3))
    assert status["daemon_started_at"] == iso(9)
    assert status["night"] == {"started_at": iso(11, 2), "planned": 4, "completed": 0}
    assert second.next_deadline(at=at(11, 3)) is None
    done = second.rem_cycle_finished(at=at(11, 10))
    assert done.effects == [run_cycle(2)]

    # And the first engine sees the second one's write on its next event.
    assert first.rem_cycle_finished(at=at(11, 20)).effects == [run_cycle(3)]


def test_in_memory_writes_no_file(private_dir: Path, monkeypatch):
    monkeypatch.chdir(private_dir)
    engine = Engine.in_memory()
    start_night(engine)
    assert list(private_dir.iterdir()) == []


# --- threads ---------------------------------------------------------------------------------


def test_threads_share_one_engine_and_lose_nothing(state_file: Path):
    engine = Engine(state_file)
    engine.boot(at=at(9))
    threads, per_thread = 8, 50
    opened = at(9, 1)
    errors: list[BaseException] = []

    def open_sessions(worker: int) -> None:
        try:
            for n in range(per_thread):
                engine.session_started(f"t{worker}-{n:02d}", at=opened)
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    workers = [threading.Thread(target=open_sessions, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []

    document = json.loads(state_file.read_text())
    # One durable write for the boot and one per session opened: no write was lost or merged.
    assert document["generation"] == 1 + threads * per_thread
    pending = list(document["first_turn_pending"])
    assert len(pending) == 100  # the cap keeps the newest 100
    assert engine.status(at=opened)["pending_sessions"] == {"count": 100, "ids": pending}
    # Each thread's survivors are its latest sessions, in the order it opened them.
    for worker in range(threads):
        mine = [int(sid.split("-")[1]) for sid in pending if sid.startswith(f"t{worker}-")]
        assert mine == list(range(per_thread - len(mine), per_thread))
    assert Engine(state_file).status(at=opened)["pending_sessions"]["ids"] == pending


def test_the_gil_is_released_while_waiting_for_the_file_lock(state_file: Path):
    engine = Engine(state_file)
    engine.boot(at=at(9))
    held = _native.LockedFile(str(state_file))
    held.acquire()
    done = threading.Event()
    count = [0]
    stop = threading.Event()

    def event() -> None:
        engine.tick(at=at(9, 1))
        done.set()

    def counter() -> None:
        while not stop.is_set():
            count[0] += 1

    waiter = threading.Thread(target=event)
    ticker = threading.Thread(target=counter)
    try:
        waiter.start()
        time.sleep(0.05)
        assert not done.is_set()  # the event waits for the lock
        ticker.start()
        time.sleep(0.05)
        before = count[0]
        time.sleep(0.2)
        after = count[0]
        assert not done.is_set()
        assert after > before  # another thread ran while the event waited
    finally:
        held.release()
        waiter.join(5)
        stop.set()
        ticker.join(5)
    assert done.is_set()
    assert generation(state_file) == 2


# --- Outcome ---------------------------------------------------------------------------------


def plain(value) -> bool:
    if value is None or isinstance(value, (bool, int, str, datetime)):
        return True
    if type(value) is list:
        return all(plain(item) for item in value)
    if type(value) is dict:
        return all(type(key) is str and plain(item) for key, item in value.items())
    return False


def test_outcome_is_a_frozen_dataclass_of_plain_values():
    engine = Engine.in_memory()
    outcomes = drive(engine, at)
    outcomes.append(engine.rem_cycle_finished(at=at(11, 10)))
    assert dataclasses.is_dataclass(Outcome)
    assert [f.name for f in dataclasses.fields(Outcome)] == [
        "state",
        "transitions",
        "effects",
        "first_turn",
        "digest",
        "next_deadline",
    ]
    for outcome in outcomes:
        assert type(outcome) is Outcome
        for f in dataclasses.fields(outcome):
            assert plain(getattr(outcome, f.name)), f.name
        with pytest.raises(dataclasses.FrozenInstanceError):
            outcome.state = "SLEEP"  # type: ignore[misc]
    assert type(outcomes[2].first_turn) is bool
    assert type(outcomes[0].next_deadline) is datetime
    assert outcomes[0].next_deadline.tzinfo is not None
    assert type(outcomes[4].effects[0]["is_last"]) is bool
    assert Outcome("WAKE") == Outcome(state="WAKE", transitions=[], effects=[])


def test_public_names():
    assert set(daemon_state.__all__) == {"DaemonStateError", "Engine", "Outcome", "Rejected", "StateFileError"}
    assert daemon_state.Rejected is daemon_state.errors.Rejected


# --- interop with the Rust CLI and the original module ---------------------------------------


@pytest.fixture(scope="module")
def cli() -> str:
    found = [REPO / "target" / kind / "daemon-state" for kind in ("release", "debug")]
    found = [path for path in found if path.is_file() and os.access(path, os.X_OK)]
    if not found:
        pytest.skip(f"no daemon-state binary under {REPO / 'target'}: run `cargo build` first")
    return str(max(found, key=lambda path: path.stat().st_mtime))  # the newest build


def run_cli(cli: str, *args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DAEMON_STATE_")}
    env["RUST_LOG"] = "off"
    done = subprocess.run(
        [cli, *args, "--json"], capture_output=True, text=True, env=env, timeout=20, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


SEED_DOCUMENT = {
    "fsm_state": "WAKE",
    "daemon_started_at": "2026-04-18T08:00:00+00:00",
    "last_digest_shown_at": "2026-04-17T08:00:00+00:00",
    "pending_digest": {
        "rem_cycles_completed": 3,
        "episodes_processed": 12,
        "schemas_induced_tier0": 2,
        "claude_call_used": True,
    },
    "last_session_ts": "2026-04-18T08:30:00+00:00",
    "first_turn_pending": {"s-a": "2026-04-18T08:30:00+00:00", "s-b": "2026-04-18T08:45:00+00:00"},
    "scheduler_paused": True,
    "host_notes": {"owner": "tests", "tags": ["a", "b"], "ratio": 0.5},
}


def test_cli_reads_a_file_compat_wrote(cli: str, state_path: Path):
    os.chmod(state_path.parent, 0o700)
    compat.save_state(dict(SEED_DOCUMENT))
    before = state_path.read_bytes()
    status = run_cli(cli, "status", "--state-file", str(state_path), "--now", "2026-04-18T09:00:00Z")
    assert status["ok"] is True
    assert status["file"] == str(state_path)
    assert status["state"] == "WAKE"
    assert status["daemon_started_at"] == SEED_DOCUMENT["daemon_started_at"]
    assert status["last_digest_shown_at"] == SEED_DOCUMENT["last_digest_shown_at"]
    assert status["last_session_ts"] == SEED_DOCUMENT["last_session_ts"]
    assert status["pending_digest"] == SEED_DOCUMENT["pending_digest"]
    assert status["pending_sessions"] == {"count": 2, "ids": ["s-a", "s-b"]}
    assert status["paused"] is True
    assert status["generation"] == 1
    assert state_path.read_bytes() == before  # status writes nothing

    # A CLI write keeps every key, its own and the host's.
    run_cli(cli, "event", "session-started", "s-c", "--state-file", str(state_path), "--now", "2026-04-18T09:00:00Z")
    after = compat.load_state()
    for key, value in SEED_DOCUMENT.items():
        if key not in ("first_turn_pending", "last_session_ts"):
            assert after[key] == value, key
    assert after["last_session_ts"] == "2026-04-18T09:00:00+00:00"
    assert list(after["first_turn_pending"]) == ["s-a", "s-b", "s-c"]
    assert after["first_turn_pending"]["s-a"] == SEED_DOCUMENT["first_turn_pending"]["s-a"]
    assert generation(state_path) == 2


def test_cli_reads_a_file_the_engine_wrote(cli: str, state_file: Path):
    engine = Engine(state_file)
    start_night(engine)
    engine.lock_acquired(at=at(11, 2))
    engine.rem_cycle_finished(summaries_created=3, main_insight_text="x", at=at(11, 10))
    engine.session_started("s2", at=at(11, 11))
    status = run_cli(cli, "status", "--state-file", str(state_file), "--now", "2026-04-18T11:12:00Z")
    ours = engine.status(at=at(11, 12))
    assert status.pop("ok") is True
    assert status.pop("file") == str(state_file)
    assert status.pop("generation") == generation(state_file)
    ours.pop("generation")
    assert status == ours
    assert status["state"] == "DREAMING"
    assert status["pending_sessions"] == {"count": 1, "ids": ["s2"]}
    assert status["night"] == {"started_at": iso(11, 2), "planned": 4, "completed": 1}


def test_a_file_the_cli_wrote_reads_in_python(cli: str, state_path: Path):
    os.chmod(state_path.parent, 0o700)
    path = str(state_path)
    boot = run_cli(cli, "event", "boot", "--state-file", path, "--now", "2026-04-18T09:00:00Z")
    assert (boot["ok"], boot["state"]) == (True, "WAKE")
    run_cli(cli, "event", "session-started", "s1", "--state-file", path, "--now", "2026-04-18T09:00:00Z")

    raw = json.loads(state_path.read_text())
    assert raw["generation"] == 2
    assert stat.S_IMODE(state_path.stat().st_mode) == 0o600

    loaded = compat.load_state()
    assert "generation" not in loaded
    assert loaded == {key: value for key, value in raw.items() if key != "generation"}
    assert loaded["daemon_started_at"] == "2026-04-18T09:00:00+00:00"
    assert loaded["first_turn_pending"] == {"s1": "2026-04-18T09:00:00+00:00"}

    state = original_daemon_state.load_state()
    assert state == raw
    assert original_daemon_state.consume_first_turn(state, "s1") is True
    assert original_daemon_state.consume_first_turn(state, "s1") is False

    # The original's save is read back by the engine.
    engine = Engine(state_path)
    assert engine.state == "WAKE"
    assert engine.status(at=at(9, 1))["pending_sessions"] == {"count": 0, "ids": []}
    assert engine.recall("s1", at=at(9, 1)).first_turn is False


def test_the_cli_binary_answers_help(cli: str):
    done = subprocess.run([cli, "--help"], capture_output=True, text=True, timeout=20, check=False)
    assert done.returncode == 0
    assert "--state-file" in done.stdout
