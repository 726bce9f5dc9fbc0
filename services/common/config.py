"""Settings shared by every service: instruments, the shard map, API keys.

All come from environment variables so one launcher (or one Kubernetes ConfigMap)
configures the whole suite the same way.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

SYMBOL_PATTERN = re.compile(r"[A-Z][A-Z0-9.]{0,11}")

DEFAULT_SYMBOLS = (
    "AAPL AMD AMZN BA CSCO DIS GOOG HD IBM INTC JNJ JPM KO MA META MSFT NFLX NVDA "
    "ORCL PEP PFE QCOM SBUX T TSLA UNH V WMT XOM ZM"
)
# Symbol ranges by first letter, as the original system planned: A-G, H-O, P-Z.
DEFAULT_SHARD_RANGES = "A-G,H-O,P-Z"


def env(name: str, default: str) -> str:
    return os.environ.get(name, default)


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {raw!r}") from None


@dataclass(frozen=True)
class ShardMap:
    """Maps a symbol to a shard index by the first letter of the symbol."""

    ranges: tuple[tuple[str, str], ...]

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
        return cls.parse(env("BOURSE_SHARD_RANGES", DEFAULT_SHARD_RANGES))

    def __len__(self) -> int:
        return len(self.ranges)

    def shard_of(self, symbol: str) -> int | None:
        first = symbol[:1]
        for index, (low, high) in enumerate(self.ranges):
            if low <= first <= high:
                return index
        return None

    def symbols_of(self, shard: int, symbols) -> list[str]:
        return [s for s in symbols if self.shard_of(s) == shard]

    def book_ids_of(self, shard: int, listed) -> dict[str, int]:
        """The symbols `shard` owns -> their engine book ids (stable over the listing)."""
        ids = symbol_ids(listed)
        return {s: ids[s] for s in self.symbols_of(shard, listed)}


def symbols_from_env() -> tuple[str, ...]:
    """The listed instruments (BOURSE_SYMBOLS, space or comma separated)."""
    raw = env("BOURSE_SYMBOLS", DEFAULT_SYMBOLS).replace(",", " ").split()
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
