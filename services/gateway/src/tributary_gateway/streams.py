"""How many event streams this replica serves at once, bounded: in all, and per caller."""

from __future__ import annotations

__all__ = ["KeyStreamSlots", "StreamSlots"]


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


class KeyStreamSlots:
    """Event streams this replica serves per caller (API key); callers with none are dropped."""

    def __init__(self) -> None:
        self.open: dict[str, int] = {}

    def take(self, key: str, *, limit: int) -> bool:
        held = self.open.get(key, 0)
        if held >= limit:
            return False
        self.open[key] = held + 1
        return True

    def give_back(self, key: str) -> None:
        held = self.open.get(key, 0) - 1
        if held > 0:
            self.open[key] = held
        else:
            self.open.pop(key, None)
