"""Exceptions raised by the ``daemon_state`` package.

Every error the package raises on purpose derives from :class:`DaemonStateError`, so a caller
can catch them all at once. The native module raises these classes too.
"""

from __future__ import annotations

__all__ = ["DaemonStateError", "Rejected", "StateFileError"]


class DaemonStateError(Exception):
    """Base class of the errors this package raises."""


class Rejected(DaemonStateError):
    """An event the current state does not accept (for example an illegal transition).

    Nothing was changed. ``state`` is the state the machine was in (``"DREAMING"``, ...) and
    ``event`` names the event that was refused.
    """

    def __init__(self, message: str, state: str, event: str):
        super().__init__(message)
        self.message = message
        self.state = state
        self.event = event

    def __reduce__(self):
        return (type(self), (self.message, self.state, self.event))


class StateFileError(DaemonStateError):
    """The state file at ``path`` could not be read or written (permissions, I/O, a bad path)."""

    def __init__(self, message: str, path: str):
        super().__init__(message)
        self.message = message
        self.path = path

    def __reduce__(self):
        return (type(self), (self.message, self.path))
