"""What every service derives from the shared settings: the instruments and the shard map.

The settings come from environment variables (services/common/settings.py) so one
launcher (or one Kubernetes ConfigMap) configures the whole suite the same way.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field

from services.common.settings import DEFAULT_SHARD_RANGES, DEFAULT_SYMBOLS, Shared

__all__ = ["DEFAULT_SHARD_RANGES", "DEFAULT_SYMBOLS", "ShardMap", "addresses", "symbol_ids", "symbols_from_env"]

SYMBOL_PATTERN = re.compile(r"[A-Z][A-Z0-9.]{0,11}")


@dataclass(frozen=True)
class ShardMap:
    """Maps a symbol to a shard index by the first letter of the symbol."""

    ranges: tuple[tuple[str, str], ...]
    # First letter -> shard, looked up once per command on the order service's path (the
    # scan over the ranges was 5% of an order replica's profile under the stream load).
    _by_letter: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        by_letter = {}
        for letter in string.ascii_uppercase:
            for index, (low, high) in enumerate(self.ranges):
                if low <= letter <= high:
                    by_letter[letter] = index
                    break
        object.__setattr__(self, "_by_letter", by_letter)

    @classmethod
    def parse(cls, spec: str) -> ShardMap:
        ranges = []
        for part in spec.split(","):
            match = re.fullmatch(r"([A-Z])(?:-([A-Z]))?", part.strip())
            low, high = (match.group(1), match.group(2) or match.group(1)) if match else ("", "")
            if not match or low > high:
                raise ValueError(f"bad shard range {part!r}: want like A-G")
            ranges.append((low, high))
        return cls(tuple(ranges))

    @classmethod
    def from_env(cls) -> ShardMap:
        return cls.parse(Shared.load().shard_ranges)

    def __len__(self) -> int:
        return len(self.ranges)

    def shard_of(self, symbol: str) -> int | None:
        return self._by_letter.get(symbol[:1])

    def symbols_of(self, shard: int, symbols) -> list[str]:
        return [s for s in symbols if self.shard_of(s) == shard]

    def book_ids_of(self, shard: int, listed) -> dict[str, int]:
        """The symbols `shard` owns -> their engine book ids (stable over the listing)."""
        ids = symbol_ids(listed)
        return {s: ids[s] for s in self.symbols_of(shard, listed)}


def symbols_from_env() -> tuple[str, ...]:
    """The listed instruments (BOURSE_SYMBOLS, space or comma separated)."""
    raw = Shared.load().symbols.replace(",", " ").split()
    for symbol in raw:
        if not SYMBOL_PATTERN.fullmatch(symbol):
            raise SystemExit(f"BOURSE_SYMBOLS: bad symbol {symbol!r}")
    return tuple(sorted(set(raw)))


def symbol_ids(symbols) -> dict[str, int]:
    """Stable small integer per symbol (the engine keys its books by integer)."""
    return {symbol: index + 1 for index, symbol in enumerate(sorted(symbols))}


def addresses(spec: str) -> list[str]:
    """`host:port,host:port` -> list, index = shard or replica number."""
    return [a.strip() for a in spec.split(",") if a.strip()]
