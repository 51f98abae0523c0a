"""``daemon_state.compat`` against the original module's behaviour.

Each acceptance case of the original test suite is named in a comment (``acceptance 12.1.3``)
and, where no fix applies, run against both ``compat`` and ``original_daemon_state``. Where the
product declares a fix, the test checks the fixed behaviour and says so.
"""

from __future__ import annotations

import inspect
import json
import logging
import multiprocessing
import stat
import sys
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import original_daemon_state as original
import pytest

from daemon_state import compat
from daemon_state.errors import DaemonStateError, Rejected, StateFileError

FUNCTIONS = [
    "load_state",
    "save_state",
    "prune_stale_first_turn",
    "mark_session_opened",
    "consume_first_turn",
    "prune_first_turn_pending",
    "get_pending_digest",
]
CONSTANTS = [
    "STATE_PATH",
    "DIGEST_SHOW_THRESHOLD_HOURS",
    "FIRST_TURN_TTL_HOURS",
    "MAX_FIRST_TURN_ENTRIES",
    "FIRST_TURN_PENDING_TTL_SEC_DEFAULT",
]


@pytest.fixture(params=["original", "compat"])
def impl(request, state_path):
    """Each implementation in turn, both writing to the same temp state file."""
    return original if request.param == "original" else compat


def needs_z_parsing(impl) -> None:
    """The original reads a trailing ``Z`` only where ``fromisoformat`` does (Python 3.11+)."""
    if impl is original and sys.version_info < (3, 11):
        pytest.skip("the original's fromisoformat reads 'Z' from Python 3.11 on")


def iso(moment: datetime) -> str:
    return moment.isoformat()


# --- names, signatures, constants -----------------------------------------------------------


def test_public_names_exist():
    public = [n for n in vars(original) if not n.startswith("_") and n.isupper()]
    assert sorted(public) == sorted(CONSTANTS)
    for name in FUNCTIONS + CONSTANTS:
        assert hasattr(compat, name), name
    assert callable(compat.locked_state)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_signatures_equal_the_original(name):
    # No declared fix changes a signature: same parameter names, defaults and annotations.
    assert inspect.signature(getattr(compat, name)) == inspect.signature(getattr(original, name))


@pytest.mark.parametrize("name", CONSTANTS)
def test_constants_equal_the_original(name):
    assert getattr(compat, name) == getattr(original, name)
    assert type(getattr(compat, name)) is type(getattr(original, name))


def test_constant_values():
    # acceptance 12.1.3 (threshold), 12.2.1 and 12.3.1 (reaper TTL)
    assert compat.DIGEST_SHOW_THRESHOLD_HOURS == 18
    assert compat.FIRST_TURN_TTL_HOURS == 24
    assert compat.MAX_FIRST_TURN_ENTRIES == 100
    assert compat.FIRST_TURN_PENDING_TTL_SEC_DEFAULT == 3600.0
    assert compat.MAX_SESSION_ID_CHARS == 128
    assert isinstance(compat.STATE_PATH, Path)
    assert compat.STATE_PATH == Path.home() / ".iai-mcp" / ".daemon-state.json"


def test_errors_keep_their_fields():
    rejected = Rejected("Illegal transition DREAMING -> TRANSITIONING", "DREAMING", "tick")
    assert isinstance(rejected, DaemonStateError)
    assert (str(rejected), rejected.state, rejected.event) == (
        "Illegal transition DREAMING -> TRANSITIONING",
        "DREAMING",
        "tick",
    )
    failed = StateFileError("cannot write", "/x/s.json")
    assert isinstance(failed, DaemonStateError)
    assert (str(failed), failed.path) == ("cannot write", "/x/s.json")


# --- load / save ----------------------------------------------------------------------------


def test_round_trip_and_mode(impl, state_path):
    # acceptance 12.1.1
    assert impl.load_state() == {}
    state = {
        "fsm_state": "WAKE",
        "daemon_started_at": "2026-04-18T00:00:00+00:00",
        "pending_digest": {"cycles": 4, "insight": "test"},
    }
    assert impl.save_state(state) is None
    assert state_path.exists()
    assert stat.S_IMODE(state_path.stat().st_mode) == 0o600
    assert impl.load_state() == state


def test_round_trip_keeps_values_and_order(state_path):
    state = {
        "zeta": 1,
        "fsm_state": "SLEEP",
        "unicode": "nuit \u00e9toil\u00e9e \U0001f319",
        "nested": {"a": [1, 2.5, None, True, False, {"b": "c"}], "empty": {}},
        "big": 2**70,
        "negative": -17,
        "float": 0.003,
        "alpha": [],
    }
    compat.save_state(state)
    loaded = compat.load_state()
    assert loaded == state
    assert list(loaded) == list(state)
    assert "generation" not in loaded


def test_save_does_not_change_the_callers_dict(state_path):
    state = {"fsm_state": "WAKE"}
    compat.save_state(state)
    compat.save_state(state)
    assert state == {"fsm_state": "WAKE"}


def test_generation_is_hidden_and_survives(state_path):
    compat.save_state({"fsm_state": "WAKE"})
    first = json.loads(state_path.read_text())["generation"]
    loaded = compat.load_state()
    assert loaded == {"fsm_state": "WAKE"}
    loaded["fsm_state"] = "SLEEP"
    compat.save_state(loaded)
    on_disk = json.loads(state_path.read_text())
    assert on_disk["generation"] > first
    assert on_disk["fsm_state"] == "SLEEP"
    assert compat.load_state() == {"fsm_state": "SLEEP"}


def test_save_failure_leaves_the_old_file(impl, state_path):
    # acceptance 12.1.2: a failed save raises and the old file is intact, no temp file is left.
    # (The rename of the native store cannot be patched from Python: a value JSON cannot hold
    # makes the save fail instead, as it makes the original's json.dump fail.)
    impl.save_state({"fsm_state": "WAKE", "version": 1})
    with pytest.raises(TypeError):
        impl.save_state({"fsm_state": "SLEEP", "version": 2, "bad": object()})
    assert impl.load_state() == {"fsm_state": "WAKE", "version": 1}
    leftovers = [p.name for p in state_path.parent.iterdir() if "tmp" in p.name]
    assert leftovers == []


def test_save_to_an_unusable_path_raises_state_file_error(tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    monkeypatch.setattr(compat, "STATE_PATH", blocker / "s.json")
    with pytest.raises(StateFileError) as caught:
        compat.save_state({"fsm_state": "WAKE"})
    assert "not-a-dir" in caught.value.path
    assert blocker.read_text() == "x"


def test_save_creates_private_parent_directories(tmp_path, monkeypatch):
    path = tmp_path / "deep" / "er" / "s.json"
    monkeypatch.setattr(compat, "STATE_PATH", path)
    compat.save_state({"fsm_state": "WAKE"})
    assert compat.load_state() == {"fsm_state": "WAKE"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_save_keeps_the_previous_file(state_path):
    compat.save_state({"version": 1})
    compat.save_state({"version": 2})
    prev = state_path.with_name(state_path.name + ".prev")
    assert prev.exists()
    assert json.loads(prev.read_text())["version"] == 1


def test_state_path_is_read_at_call_time(tmp_path, monkeypatch):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    monkeypatch.setattr(compat, "STATE_PATH", first)
    compat.save_state({"where": "a"})
    monkeypatch.setattr(compat, "STATE_PATH", second)
    compat.save_state({"where": "b"})
    assert compat.load_state() == {"where": "b"}
    monkeypatch.setattr(compat, "STATE_PATH", first)
    assert compat.load_state() == {"where": "a"}


@pytest.mark.parametrize("garbage", [b"{not json", b"\xff\xfe\x00garbage", b"[1, 2, 3]", b""])
def test_corrupt_file_is_quarantined_and_prev_used(state_path, caplog, garbage):
    # fix: the original returned {} for a corrupt file and the next save destroyed it.
    compat.save_state({"fsm_state": "WAKE", "version": 1})
    compat.save_state({"fsm_state": "SLEEP", "version": 2})
    before = set(state_path.parent.iterdir())
    state_path.write_bytes(garbage)
    with caplog.at_level(logging.WARNING, logger="daemon_state.compat"):
        loaded = compat.load_state()
    assert loaded == {"fsm_state": "WAKE", "version": 1}
    assert caplog.records, "a corrupt file is reported"
    new = set(state_path.parent.iterdir()) - before
    assert any(p.read_bytes() == garbage for p in new), "the corrupt bytes are kept aside"


def test_corrupt_file_without_prev_is_still_quarantined(state_path):
    state_path.write_bytes(b"{truncated")
    assert original.load_state() == {}  # the original silently drops it
    assert compat.load_state() == {}
    kept = [p for p in state_path.parent.iterdir() if p.read_bytes() == b"{truncated"]
    assert kept and state_path not in kept
    compat.save_state({"fresh": True})
    assert any(p.read_bytes() == b"{truncated" for p in state_path.parent.iterdir())


def test_load_of_a_missing_directory_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(compat, "STATE_PATH", tmp_path / "absent" / "s.json")
    assert compat.load_state() == {}
    assert list(tmp_path.iterdir()) == []


def test_unreadable_state_path_raises_instead_of_reading_empty(state_path):
    # fix: the original read an unreadable file as {} (and its next save replaced it).
    state_path.mkdir()
    assert original.load_state() == {}
    with pytest.raises(StateFileError) as caught:
        compat.load_state()
    assert caught.value.path == str(state_path)


def test_load_and_save_can_be_patched(monkeypatch, state_path):
    saved = []
    monkeypatch.setattr(compat, "save_state", lambda state: saved.append(dict(state)))
    monkeypatch.setattr(compat, "load_state", lambda: {"from": "fake"})
    assert compat.load_state() == {"from": "fake"}
    state = {"first_turn_pending": {"s1": True}}
    assert compat.consume_first_turn(state, "s1") is True
    assert saved == [{"first_turn_pending": {}}]
    assert not state_path.exists()


# --- interop with the original module ------------------------------------------------------


def test_file_written_by_compat_reads_in_the_original(state_path):
    state = {
        "fsm_state": "WAKE",
        "first_turn_pending": {"sess-1": "2026-04-18T20:00:00+00:00"},
        "pending_digest": {"rem_cycles_completed": 4, "main_insight_text": None},
        "quiet_window": [35, 16],
        "unknown_key": {"kept": ["verbatim", 1.5]},
    }
    compat.save_state(state)
    seen = original.load_state()
    assert {k: v for k, v in seen.items() if k != "generation"} == state
    assert all(seen[k] == v for k, v in state.items())


def test_file_written_by_the_original_reads_in_compat(state_path):
    state = {"fsm_state": "DREAMING", "last_digest_shown_at": None, "rem_cycle_count": 4}
    original.save_state(state)
    assert compat.load_state() == state
    compat.save_state(dict(state, fsm_state="WAKE"))
    original.save_state(original.load_state())  # the original keeps the store's key verbatim
    assert compat.load_state() == dict(state, fsm_state="WAKE")


# --- prune_stale_first_turn -----------------------------------------------------------------

NOW_12_1 = datetime(2026, 4, 23, 12, 0, tzinfo=timezone.utc)


def test_prune_legacy_booleans(impl):
    # acceptance 12.1.6
    state = {"first_turn_pending": {"sess-1": True, "sess-2": False, "sess-3": True}}
    assert impl.prune_stale_first_turn(state) == 3
    assert state["first_turn_pending"] == {}


def test_prune_ttl(impl):
    # acceptance 12.1.7
    fresh, stale = iso(NOW_12_1 - timedelta(hours=1)), iso(NOW_12_1 - timedelta(hours=48))
    state = {"first_turn_pending": {"fresh": fresh, "stale": stale}}
    assert impl.prune_stale_first_turn(state, now=NOW_12_1, ttl_hours=24) == 1
    assert state["first_turn_pending"] == {"fresh": fresh}


def test_prune_cap(impl):
    # acceptance 12.1.8
    pending = {f"sess-{i}": iso(NOW_12_1 - timedelta(minutes=i)) for i in range(10)}
    state = {"first_turn_pending": pending}
    assert impl.prune_stale_first_turn(state, now=NOW_12_1, ttl_hours=24, max_entries=3) == 7
    assert set(state["first_turn_pending"]) == {"sess-0", "sess-1", "sess-2"}


@pytest.mark.parametrize("state", [{}, {"first_turn_pending": {}}, {"first_turn_pending": None}])
def test_prune_empty_or_missing(impl, state):
    # acceptance 12.1.9
    before = dict(state)
    assert impl.prune_stale_first_turn(state) == 0
    assert state == before


def test_prune_malformed_strings_and_naive_and_z(impl):
    needs_z_parsing(impl)
    state = {
        "first_turn_pending": {
            "bad": "not-a-time",
            "naive": "2026-04-23T11:00:00",
            "zulu": "2026-04-23T11:30:00Z",
            "offset": "2026-04-23T13:00:00+02:00",
        }
    }
    assert impl.prune_stale_first_turn(state, now=NOW_12_1) == 1
    assert list(state["first_turn_pending"]) == ["naive", "zulu", "offset"]


def test_prune_cap_ties_keep_the_latest_opened():
    # fix: on equal timestamps the cap keeps the most recently opened session. The original
    # sorted stably and evicted the one opened last.
    stamp = iso(NOW_12_1)
    pending = {f"sess-{i}": stamp for i in range(4)}
    legacy, fixed = {"first_turn_pending": dict(pending)}, {"first_turn_pending": dict(pending)}
    original.prune_stale_first_turn(legacy, now=NOW_12_1, max_entries=3)
    compat.prune_stale_first_turn(fixed, now=NOW_12_1, max_entries=3)
    assert set(legacy["first_turn_pending"]) == {"sess-0", "sess-1", "sess-2"}
    assert list(fixed["first_turn_pending"]) == ["sess-1", "sess-2", "sess-3"]


def test_prune_cap_keeps_the_same_dict_and_order():
    # fix: survivors keep their order in the same dict (the original built a new dict, newest
    # first).
    pending = {f"sess-{i}": iso(NOW_12_1 - timedelta(minutes=10 - i)) for i in range(5)}
    state = {"first_turn_pending": pending}
    assert compat.prune_stale_first_turn(state, now=NOW_12_1, max_entries=2) == 3
    assert state["first_turn_pending"] is pending
    assert list(pending) == ["sess-3", "sess-4"]


def test_prune_cap_ranks_future_marks_as_now():
    # fix: marks dated in the future (clock ran ahead) rank as `now`, so they do not push out a
    # mark made now.
    future = iso(NOW_12_1 + timedelta(hours=5))
    state = {"first_turn_pending": {"ahead-1": future, "ahead-2": future, "new": iso(NOW_12_1)}}
    compat.prune_stale_first_turn(state, now=NOW_12_1, max_entries=2)
    assert list(state["first_turn_pending"]) == ["ahead-2", "new"]


# --- mark_session_opened --------------------------------------------------------------------


def test_mark_stores_an_iso_timestamp(impl):
    before = datetime.now(timezone.utc)
    state = {}
    assert impl.mark_session_opened(state, "sess-abc") is None
    stamp = state["first_turn_pending"]["sess-abc"]
    at = datetime.fromisoformat(stamp)
    assert at.tzinfo is not None and before <= at <= datetime.now(timezone.utc)
    assert stamp == at.isoformat()


@pytest.mark.parametrize("session_id", ["", None, 123])
def test_mark_without_a_usable_id_marks_nothing(impl, session_id):
    state = {"fsm_state": "WAKE"}
    impl.mark_session_opened(state, session_id)
    assert state == {"fsm_state": "WAKE"}


def test_mark_prunes_stale_entries(impl):
    old = iso(datetime.now(timezone.utc) - timedelta(hours=48))
    state = {"first_turn_pending": {"old": old, "legacy": True}}
    impl.mark_session_opened(state, "new")
    assert list(state["first_turn_pending"]) == ["new"]


def test_mark_clips_long_ids():
    # fix (acceptance 12.10, session_open 3): ids are clipped to 128 characters.
    state, legacy = {}, {}
    compat.mark_session_opened(state, "a" * 1000)
    original.mark_session_opened(legacy, "a" * 1000)
    assert list(state["first_turn_pending"]) == ["a" * 128]
    assert list(legacy["first_turn_pending"]) == ["a" * 1000]


def test_mark_keeps_the_session_just_opened_at_the_cap(monkeypatch):
    # fix: with 100 marks of the same moment, the new mark survives and the oldest-opened goes.
    monkeypatch.setattr(compat, "_utcnow", lambda: NOW_12_1)
    state = {"first_turn_pending": {f"sess-{i}": iso(NOW_12_1) for i in range(100)}}
    compat.mark_session_opened(state, "sess-new")
    pending = state["first_turn_pending"]
    assert len(pending) == 100
    assert "sess-new" in pending and "sess-0" not in pending
    assert list(pending)[-1] == "sess-new"


def test_mark_moves_a_reopened_session_to_the_end(monkeypatch):
    monkeypatch.setattr(compat, "_utcnow", lambda: NOW_12_1)
    state = {"first_turn_pending": {"a": iso(NOW_12_1), "b": iso(NOW_12_1)}}
    compat.mark_session_opened(state, "a")
    assert list(state["first_turn_pending"]) == ["b", "a"]


def test_mark_bounds_the_map(monkeypatch):
    monkeypatch.setattr(compat, "_utcnow", lambda: NOW_12_1)
    state = {}
    for i in range(250):
        compat.mark_session_opened(state, f"sess-{i}")
    assert list(state["first_turn_pending"]) == [f"sess-{i}" for i in range(150, 250)]


def test_mark_replaces_a_pending_that_is_not_a_dict():
    # fix: the original raised TypeError on a non-dict `first_turn_pending`.
    with pytest.raises(TypeError):
        original.mark_session_opened({"first_turn_pending": None}, "s1")
    state = {"first_turn_pending": None, "other": 1}
    compat.mark_session_opened(state, "s1")
    assert list(state) == ["first_turn_pending", "other"]
    assert list(state["first_turn_pending"]) == ["s1"]


# --- consume_first_turn ---------------------------------------------------------------------


@pytest.fixture
def saves(monkeypatch):
    """Record what each implementation's save_state is given, without touching disk."""
    calls = []
    for module in (compat, original):
        monkeypatch.setattr(module, "save_state", lambda state: calls.append(json.dumps(state)))
    return calls


@pytest.mark.parametrize("mark", [True, 1, "2026-04-18T20:00:00+00:00", "x", [0], {"a": 1}])
def test_consume_is_true_exactly_once(impl, saves, mark):
    # acceptance 12.4.1 at the state layer: a legacy `True` counts as a mark.
    state = {"first_turn_pending": {"s1": mark, "s2": True}}
    assert impl.consume_first_turn(state, "s1") is True
    assert impl.consume_first_turn(state, "s1") is False
    assert state == {"first_turn_pending": {"s2": True}}
    assert [json.loads(s) for s in saves] == [{"first_turn_pending": {"s2": True}}]


@pytest.mark.parametrize("mark", [False, None, "", 0, [], {}])
def test_consume_falsy_mark_is_not_a_first_turn(impl, saves, mark):
    state = {"first_turn_pending": {"s1": mark}}
    assert impl.consume_first_turn(state, "s1") is False
    assert state == {"first_turn_pending": {}}
    assert saves == []


@pytest.mark.parametrize(
    "state",
    [{}, {"first_turn_pending": None}, {"first_turn_pending": []}, {"first_turn_pending": {}}],
)
def test_consume_without_marks(impl, saves, state):
    assert impl.consume_first_turn(state, "s1") is False
    assert saves == []


def test_consume_never_raises(impl, saves):
    state = {"first_turn_pending": {"s1": True}}
    assert impl.consume_first_turn(state, ["unhashable"]) is False
    assert impl.consume_first_turn(None, "s1") is False


def test_consume_ignores_a_failed_save(impl, monkeypatch):
    def boom(state):
        raise OSError("disk full")

    monkeypatch.setattr(impl, "save_state", boom)
    state = {"first_turn_pending": {"s1": True}}
    assert impl.consume_first_turn(state, "s1") is True
    assert state == {"first_turn_pending": {}}


def test_consume_persists(impl, state_path):
    state = {"fsm_state": "WAKE", "first_turn_pending": {"s1": True, "s2": True}}
    assert impl.consume_first_turn(state, "s1") is True
    assert impl.load_state() == {"fsm_state": "WAKE", "first_turn_pending": {"s2": True}}


def test_consume_finds_a_clipped_mark(saves):
    # fix: a long id finds the mark that mark_session_opened stored under its clipped form.
    state = {}
    compat.mark_session_opened(state, "b" * 300)
    assert compat.consume_first_turn(state, "b" * 300) is True
    assert state["first_turn_pending"] == {}
    legacy = {"first_turn_pending": {"c" * 300: True}}
    assert compat.consume_first_turn(legacy, "c" * 300) is True  # an exact key is found first


# --- prune_first_turn_pending ---------------------------------------------------------------

NOW = datetime(2026, 4, 27, 12, 0, tzinfo=timezone.utc)


def test_reaper_default_ttl(impl):
    # acceptance 12.2.1, 12.3.3
    assert impl.FIRST_TURN_PENDING_TTL_SEC_DEFAULT == 3600.0
    assert inspect.signature(impl.prune_first_turn_pending).parameters["ttl_sec"].default == 3600.0


def test_reaper_fresh_and_stale(impl):
    # acceptance 12.2.2
    fresh = iso(NOW - timedelta(seconds=1800))
    state = {
        "first_turn_pending": {
            "sess-fresh": fresh,
            "sess-stale": iso(NOW - timedelta(seconds=7200)),
        }
    }
    result, dropped = impl.prune_first_turn_pending(state, now=NOW, ttl_sec=3600)
    assert result is state
    assert state["first_turn_pending"] == {"sess-fresh": fresh}
    assert dropped == ["sess-stale"]


def test_reaper_legacy_values(impl):
    # acceptance 12.2.3
    state = {"first_turn_pending": {"sess-1": True, "sess-2": False, "sess-3": None}}
    _, dropped = impl.prune_first_turn_pending(state, now=NOW)
    assert state["first_turn_pending"] == {}
    assert sorted(dropped) == ["sess-1", "sess-2", "sess-3"]


def test_reaper_malformed_string(impl):
    # acceptance 12.2.4
    good = iso(NOW - timedelta(seconds=60))
    state = {"first_turn_pending": {"sess-bad": "not-an-iso-string-2026-99-99", "sess-good": good}}
    _, dropped = impl.prune_first_turn_pending(state, now=NOW)
    assert dropped == ["sess-bad"]
    assert state["first_turn_pending"] == {"sess-good": good}


def test_reaper_naive_timestamp(impl):
    # acceptance 12.2.5
    state = {"first_turn_pending": {"sess-naive": "2026-04-27T10:00:00"}}
    _, dropped = impl.prune_first_turn_pending(state, now=NOW, ttl_sec=3600)
    assert dropped == ["sess-naive"]
    assert state["first_turn_pending"] == {}


def test_reaper_empty_or_missing(impl):
    # acceptance 12.2.6
    state = {}
    result, dropped = impl.prune_first_turn_pending(state, now=NOW)
    assert (result, dropped) == ({}, []) and result is state
    empty = {}
    state = {"first_turn_pending": empty}
    result, dropped = impl.prune_first_turn_pending(state, now=NOW)
    assert dropped == [] and result["first_turn_pending"] is empty
    state = {"first_turn_pending": None}
    assert impl.prune_first_turn_pending(state, now=NOW) == ({"first_turn_pending": None}, [])


def test_reaper_is_pure(impl, saves):
    # acceptance 12.2.7
    state = {
        "unrelated_key": "unrelated_value",
        "fsm_state": "WAKE",
        "first_turn_pending": {"sess-stale": iso(NOW - timedelta(hours=2))},
    }
    impl.prune_first_turn_pending(state, now=NOW)
    assert state["unrelated_key"] == "unrelated_value" and state["fsm_state"] == "WAKE"
    assert saves == []


def test_reaper_five_stale_five_fresh(impl):
    # acceptance 12.3.1 and 12.3.2
    pending = {f"sess-stale-{i}": iso(NOW - timedelta(hours=2)) for i in range(5)}
    pending |= {f"sess-fresh-{i}": iso(NOW - timedelta(seconds=30)) for i in range(5)}
    state = {"first_turn_pending": pending}
    _, dropped = impl.prune_first_turn_pending(state, now=NOW)
    assert sorted(dropped) == [f"sess-stale-{i}" for i in range(5)]
    assert sorted(state["first_turn_pending"]) == [f"sess-fresh-{i}" for i in range(5)]
    _, dropped = impl.prune_first_turn_pending(state, now=NOW)
    assert dropped == [] and len(state["first_turn_pending"]) == 5


def test_reaper_boundary_and_verbatim(impl):
    needs_z_parsing(impl)
    # An entry exactly ttl_sec old stays (strictly older is dropped); survivors keep their text.
    exact = "2026-04-27T11:00:00.000000+00:00"
    older = iso(NOW - timedelta(seconds=3600, microseconds=1))
    state = {"first_turn_pending": {"exact": exact, "older": older, "z": "2026-04-27T11:59:00Z"}}
    _, dropped = impl.prune_first_turn_pending(state, now=NOW.replace(tzinfo=None))
    assert dropped == ["older"]
    assert state["first_turn_pending"] == {"exact": exact, "z": "2026-04-27T11:59:00Z"}


# --- get_pending_digest ---------------------------------------------------------------------

DIGEST_NOW = datetime(2026, 4, 18, 20, 0, tzinfo=timezone.utc)


def test_digest_after_18_hours(impl, state_path):
    # acceptance 12.1.3
    state = {
        "last_digest_shown_at": iso(DIGEST_NOW - timedelta(hours=20)),
        "pending_digest": {"cycles": 4, "insight": "after-threshold"},
    }
    assert state["last_digest_shown_at"] == "2026-04-18T00:00:00+00:00"
    impl.save_state(state)
    assert impl.get_pending_digest(state, DIGEST_NOW) == {"cycles": 4, "insight": "after-threshold"}
    assert "pending_digest" not in state
    assert state["last_digest_shown_at"] == "2026-04-18T20:00:00+00:00"
    on_disk = impl.load_state()
    on_disk.pop("generation", None)
    assert on_disk == {"last_digest_shown_at": "2026-04-18T20:00:00+00:00"}


def test_digest_withheld_before_18_hours(impl, saves):
    # acceptance 12.1.4
    last = iso(DIGEST_NOW - timedelta(hours=4))
    state = {"last_digest_shown_at": last, "pending_digest": {"cycles": 4, "insight": "too-early"}}
    assert impl.get_pending_digest(state, DIGEST_NOW) is None
    assert state == {
        "last_digest_shown_at": last,
        "pending_digest": {"cycles": 4, "insight": "too-early"},
    }
    assert saves == []


def test_no_digest(impl, saves):
    # acceptance 12.1.5
    assert impl.get_pending_digest({}, DIGEST_NOW) is None
    assert impl.get_pending_digest({"pending_digest": {}}, DIGEST_NOW) is None
    assert impl.get_pending_digest({"pending_digest": None}, DIGEST_NOW) is None
    assert saves == []


def test_digest_exactly_18_hours_delivers(impl, saves):
    state = {"last_digest_shown_at": "2026-04-18T02:00:00+00:00", "pending_digest": {"n": 1}}
    assert impl.get_pending_digest(state, DIGEST_NOW) == {"n": 1}
    assert [json.loads(s) for s in saves] == [{"last_digest_shown_at": "2026-04-18T20:00:00+00:00"}]


@pytest.mark.parametrize("last", ["garbage", 12345, ["2026-04-18"], {"at": 1}, "", None])
def test_digest_malformed_last_counts_as_never_shown(impl, saves, last):
    state = {"last_digest_shown_at": last, "pending_digest": {"n": 1}}
    assert impl.get_pending_digest(state, DIGEST_NOW) == {"n": 1}
    assert state == {"last_digest_shown_at": "2026-04-18T20:00:00+00:00"}


def test_digest_full_payload_round_trip(impl, state_path):
    # acceptance 12.7.2 and 12.8.1 at the state layer: every field comes back equal.
    digest = {
        "rem_cycles_completed": 4,
        "episodes_processed": 10,
        "schemas_induced_tier0": 3,
        "claude_call_used": True,
        "quota_used_pct": 0.003,
        "main_insight_text": "today's unifying insight",
        "sigma_observed": 1.2,
        "s5_drift_alerts": [],
        "daemon_uptime_hours": 8,
        "timed_out_cycles": 0,
    }
    impl.save_state(
        {"pending_digest": digest, "last_digest_shown_at": iso(DIGEST_NOW - timedelta(hours=20))}
    )
    state = impl.load_state()
    assert impl.get_pending_digest(state, DIGEST_NOW) == digest
    assert "pending_digest" not in impl.load_state()  # acceptance 12.8.4


def test_digest_naive_now_is_taken_as_utc(impl, saves):
    state = {"pending_digest": {"n": 1}}
    impl.get_pending_digest(state, DIGEST_NOW.replace(tzinfo=None))
    assert state["last_digest_shown_at"] == "2026-04-18T20:00:00+00:00"


def test_digest_future_last_shown_does_not_block(monkeypatch):
    # fix: a last_digest_shown_at in the future (the clock went back) does not withhold the
    # digest; the original withheld it until that future had passed by 18 h.
    future = iso(DIGEST_NOW + timedelta(days=3))
    legacy = {"last_digest_shown_at": future, "pending_digest": {"n": 1}}
    assert original.get_pending_digest(legacy, DIGEST_NOW) is None
    saved = []
    state = {"last_digest_shown_at": future, "pending_digest": {"n": 1}}
    monkeypatch.setattr(compat, "save_state", saved.append)
    assert compat.get_pending_digest(state, DIGEST_NOW) == {"n": 1}
    assert state == {"last_digest_shown_at": "2026-04-18T20:00:00+00:00"}
    assert saved == [state]


def test_digest_stays_when_the_save_fails(monkeypatch):
    # fix: the digest leaves memory only once the save succeeded; the original lost it.
    def boom(state):
        raise OSError("disk full")

    monkeypatch.setattr(original, "save_state", boom)
    monkeypatch.setattr(compat, "save_state", boom)
    legacy = {"fsm_state": "WAKE", "pending_digest": {"n": 1}, "last_digest_shown_at": "x"}
    state = dict(legacy)
    with pytest.raises(OSError):
        original.get_pending_digest(legacy, DIGEST_NOW)
    assert "pending_digest" not in legacy
    with pytest.raises(OSError):
        compat.get_pending_digest(state, DIGEST_NOW)
    assert state == {"fsm_state": "WAKE", "pending_digest": {"n": 1}, "last_digest_shown_at": "x"}


def test_digest_threshold_read_at_call_time(impl, saves, monkeypatch):
    monkeypatch.setattr(impl, "DIGEST_SHOW_THRESHOLD_HOURS", 2)
    state = {
        "last_digest_shown_at": iso(DIGEST_NOW - timedelta(hours=4)),
        "pending_digest": {"n": 1},
    }
    assert impl.get_pending_digest(state, DIGEST_NOW) == {"n": 1}


# --- locked_state ---------------------------------------------------------------------------


def test_locked_state_saves_on_exit(state_path):
    compat.save_state({"fsm_state": "WAKE"})
    with compat.locked_state() as state:
        assert state == {"fsm_state": "WAKE"}
        assert "generation" not in state
        state["x"] = 1
    assert compat.load_state() == {"fsm_state": "WAKE", "x": 1}
    assert stat.S_IMODE(state_path.stat().st_mode) == 0o600


def test_locked_state_on_a_missing_file(state_path):
    with compat.locked_state() as state:
        assert state == {}
        state["created"] = True
    assert original.load_state()["created"] is True


def test_locked_state_takes_an_explicit_path(tmp_path, state_path):
    other = tmp_path / "other.json"
    with compat.locked_state(other) as state:
        state["where"] = "other"
    with compat.locked_state(str(other)) as state:
        assert state == {"where": "other"}
    assert not state_path.exists()


def test_locked_state_saves_nothing_on_error(state_path):
    compat.save_state({"fsm_state": "WAKE"})
    before = state_path.read_bytes()

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        with compat.locked_state() as state:
            state["fsm_state"] = "SLEEP"
            raise Boom
    assert state_path.read_bytes() == before

    # The lock was released: another locked block, from another thread, gets in.
    done = threading.Event()

    def again():
        with compat.locked_state() as state:
            state["after"] = 1
        done.set()

    thread = threading.Thread(target=again, daemon=True)
    thread.start()
    assert done.wait(10), "the lock was not released"
    assert compat.load_state() == {"fsm_state": "WAKE", "after": 1}


def test_locked_state_excludes_other_writers(state_path):
    compat.save_state({"n": 0})
    entered, leave = threading.Event(), threading.Event()

    def holder():
        with compat.locked_state() as state:
            entered.set()
            leave.wait(10)
            state["n"] += 1

    thread = threading.Thread(target=holder, daemon=True)
    thread.start()
    assert entered.wait(10)
    results = []
    waiter = threading.Thread(
        target=lambda: results.append(_increment(str(state_path))), daemon=True
    )
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive(), "the second writer waits for the lock"
    leave.set()
    thread.join(10)
    waiter.join(10)
    assert compat.load_state() == {"n": 1, "counter": 1}


def test_locked_state_refuses_nested_use_instead_of_hanging(state_path):
    compat.save_state({"first_turn_pending": {"s1": True}})
    with compat.locked_state() as state:
        with pytest.raises(StateFileError):
            compat.load_state()
        with pytest.raises(StateFileError):
            compat.save_state({})
        with pytest.raises(StateFileError):
            with compat.locked_state(str(state_path)):
                pass
        # A function that saves through save_state still changes the dict; the block saves it.
        assert compat.consume_first_turn(state, "s1") is True
    assert compat.load_state() == {"first_turn_pending": {}}


def test_locked_state_uses_prev_for_a_corrupt_file(state_path):
    compat.save_state({"version": 1})
    compat.save_state({"version": 2})
    state_path.write_text("{corrupt")
    with compat.locked_state() as state:
        assert state == {"version": 1}
        state["version"] = 3
    assert compat.load_state() == {"version": 3}


def _increment(path: str, times: int = 1) -> None:
    for _ in range(times):
        with compat.locked_state(path) as state:
            state["counter"] = state.get("counter", 0) + 1


def test_locked_state_threads_lose_no_update(state_path):
    threads = [threading.Thread(target=_increment, args=(str(state_path), 50)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert compat.load_state() == {"counter": 100}


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_locked_state_processes_lose_no_update(state_path):
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_increment, args=(str(state_path), 50)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    assert compat.load_state() == {"counter": 100}
    assert original.load_state()["counter"] == 100


# Out of scope at this layer: 12.4 (memory store and recall hook), 12.5 (quiet window, tested in
# the Rust crate), 12.6, 12.7.3 and 12.9 (daemon, scheduler and transports).
