"""Shared fixtures: the original module (a comparison fixture) and a state file in a temp dir."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
if str(_HERE) not in sys.path:
    sys.path.insert(0, str(_HERE))

import original_daemon_state  # noqa: E402


@pytest.fixture
def state_path(tmp_path, monkeypatch):
    """Both the compat module and the original module pointed at ``tmp_path / "s.json"``."""
    from daemon_state import compat

    path = tmp_path / "s.json"
    monkeypatch.setattr(compat, "STATE_PATH", path)
    monkeypatch.setattr(original_daemon_state, "STATE_PATH", path)
    return path
