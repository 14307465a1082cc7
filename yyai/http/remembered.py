"""A bounded memo for the checks of a request whose input clients repeat: a Host, a Content-Type, a header line."""

from __future__ import annotations

from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
_MISSING = object()


class Remembered(dict, Generic[K, V]):
    """``self(key)`` is ``read(key)``, remembered for the last ``kept`` distinct keys. When full, all are
    forgotten at once: any client may send any key, so the memory stays bounded (and refilling costs ``kept``
    reads)."""

    def __init__(self, read: Callable[[K], V], kept: int):
        super().__init__()
        self.read, self.kept = read, kept

    def __call__(self, key: K) -> V:
        found = self.get(key, _MISSING)
        if found is _MISSING:
            if len(self) >= self.kept:
                self.clear()
            found = self[key] = self.read(key)
        return found
