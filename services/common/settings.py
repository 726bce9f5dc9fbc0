"""The services' settings as typed classes (pydantic-settings), each default written once.

A service reads its BOURSE_* environment variables through one class: its config module
declares it, on top of `Shared` (the settings every service reads) or `Downstream` (what
matching and order also share). A field is the variable's name after the prefix, in
lower case; its type and bounds are checked when the service starts, and a wrong value
stops the service with a message naming the variable. The config modules turn these raw
values into what the code uses (seconds, a shard map, address lists). The README's table
of settings, the Kubernetes checks and the metrics read the same classes.
"""

from __future__ import annotations

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SYMBOLS = (
    "AAPL AMD AMZN BA CSCO DIS GOOG HD IBM INTC JNJ JPM KO MA META MSFT NFLX NVDA "
    "ORCL PEP PFE QCOM SBUX T TSLA UNH V WMT XOM ZM"
)
# Symbol ranges by first letter, as the original system planned: A-G, H-O, P-Z.
DEFAULT_SHARD_RANGES = "A-G,H-O,P-Z"
PREFIX = "BOURSE_"


class BourseSettings(BaseSettings):
    """Read from BOURSE_<FIELD> variables; others are ignored; frozen once read."""

    # An empty variable counts as unset, as a Kubernetes manifest's `value: ""` does.
    model_config = SettingsConfigDict(env_prefix=PREFIX, frozen=True, extra="ignore", env_ignore_empty=True)

    @classmethod
    def load(cls):
        """The settings from the environment, or SystemExit naming each bad variable."""
        try:
            return cls()
        except ValidationError as error:
            raise SystemExit("; ".join(cls._problem(e) for e in error.errors())) from None

    @classmethod
    def _problem(cls, error) -> str:
        name = str(error["loc"][0])
        field = cls.model_fields.get(name)
        what = f" ({field.description})" if field is not None and field.description else ""
        if error["type"] == "missing":
            return f"{PREFIX}{name.upper()} is required{what}"
        return f"{PREFIX}{name.upper()}: {error['msg'].lower()}, got {error['input']!r}{what}"

    @classmethod
    def variables(cls) -> dict[str, bool]:
        """Each variable this class reads -> whether it has a default."""
        return {PREFIX + name.upper(): not field.is_required() for name, field in cls.model_fields.items()}


class Shared(BourseSettings):
    """What every service reads."""

    symbols: str = DEFAULT_SYMBOLS  # the listed instruments, space or comma separated
    shard_ranges: str = DEFAULT_SHARD_RANGES
    persistence_addr: str = "127.0.0.1:50070"
    drain_ms: int = Field(2000, ge=0)
    metrics_addr: str = ""  # unset: no /metrics (services/common/metrics.py)
    otlp_endpoint: str = ""  # unset: no tracing (services/common/tracing.py)


class Downstream(Shared):
    """What matching and the order service also share: Redis, startup, batching."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    startup_timeout_ms: int = Field(60_000, ge=0)
    batch_linger_us: int = Field(3000, ge=0)


def every_settings_class() -> list[type[BourseSettings]]:
    """The settings classes of every service (importing their config modules)."""
    import services.matching.config  # noqa: F401 - declare their classes
    import services.order.config  # noqa: F401
    import services.persistence.config  # noqa: F401

    found, todo = [], [BourseSettings]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found
