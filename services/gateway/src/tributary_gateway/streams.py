"""How many event streams this replica serves at once, bounded."""

from __future__ import annotations

__all__ = ["StreamSlots"]


class StreamSlots:
    """A counter with a ceiling (the event loop is single-threaded: no lock needed)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def take(self) -> bool:
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def give_back(self) -> None:
        self.open = max(0, self.open - 1)
