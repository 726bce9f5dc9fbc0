"""The lost-order check: every acknowledged order must be in PostgreSQL, in a state
the acknowledgement allows (an ack means committed)."""

from __future__ import annotations

from dataclasses import dataclass, field

from loadgen.workload import CANCELLED, FILLED, NEW, PARTIALLY_FILLED, REJECTED

CHUNK = 5000

# The states an order acknowledged in one status may be found in later.
LATER_STATES = {
    NEW: {NEW, PARTIALLY_FILLED, FILLED, CANCELLED},
    PARTIALLY_FILLED: {PARTIALLY_FILLED, FILLED, CANCELLED},
    FILLED: {FILLED},
    CANCELLED: {CANCELLED},
    REJECTED: {REJECTED},
}
FINAL = {FILLED, CANCELLED, REJECTED}
_NAMES = {"NEW": NEW, "PARTIALLY_FILLED": PARTIALLY_FILLED, "FILLED": FILLED, "CANCELLED": CANCELLED,
          "REJECTED": REJECTED}


# What an ack said of an order: (status, filled quantity). A plain tuple of ints, which the
# cyclic collector stops tracking at the first collection it survives: the load generator
# keeps one per order acked, and as objects (a dataclass) the collection that walked them,
# once near the end of a 20 s run at 14,000 calls/s, paused it 85 ms, and every call in
# flight then was timed 85 ms late.
Acked = tuple[int, int]


@dataclass
class Result:
    databases: int
    checked: int
    lost: int = 0
    inconsistent: int = 0
    lost_examples: list[int] = field(default_factory=list)
    inconsistent_examples: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return dict(self.__dict__)


def status_number(value) -> int:
    """A stored status as its proto number (stored as SMALLINT; names tolerated)."""
    if isinstance(value, int):
        return value
    text = str(value).upper().removeprefix("ORDER_STATUS_")
    return _NAMES.get(text, int(text) if text.isdigit() else 0)


def consistent(acked: Acked, status: int, filled_quantity: int) -> bool:
    """Whether a stored (status, filled) can follow what the ack said."""
    acked_status, acked_filled = acked
    if status not in LATER_STATES.get(acked_status, set()):
        return False
    if acked_status in FINAL:
        return filled_quantity == acked_filled
    return filled_quantity >= acked_filled


def compare(acked: dict[int, Acked], stored: dict[int, tuple[int, int]], databases: int = 1) -> Result:
    """stored: order_id -> (status, filled_quantity) as found in the databases."""
    result = Result(databases=databases, checked=len(acked))
    for order_id, ack in acked.items():
        row = stored.get(order_id)
        if row is None:
            result.lost += 1
            if len(result.lost_examples) < 10:
                result.lost_examples.append(order_id)
        elif not consistent(ack, status_number(row[0]), row[1]):
            result.inconsistent += 1
            if len(result.inconsistent_examples) < 10:
                result.inconsistent_examples.append({
                    "order_id": order_id, "acked_status": ack[0], "acked_filled": ack[1],
                    "stored_status": status_number(row[0]), "stored_filled": row[1]})
    return result


def plain_url(url: str) -> str:
    """psycopg wants postgresql://; accept the SQLAlchemy spelling too."""
    scheme, sep, rest = url.partition("://")
    return "postgresql" + sep + rest if scheme.startswith("postgresql") else url


def fetch(db_urls: list[str], order_ids: list[int], chunk: int = CHUNK) -> dict[int, tuple[int, int]]:
    import psycopg

    stored: dict[int, tuple[int, int]] = {}
    for url in db_urls:
        with psycopg.connect(plain_url(url), autocommit=True) as conn:
            for start in range(0, len(order_ids), chunk):
                rows = conn.execute(
                    "SELECT order_id, status, filled_quantity FROM orders WHERE order_id = ANY(%s)",
                    (order_ids[start:start + chunk],),
                ).fetchall()
                for order_id, status, filled in rows:
                    stored[int(order_id)] = (status, int(filled))
    return stored


# A database restarting after a crash (under `make up` it is started again) gets this long
# to answer before the check gives up.
FETCH_PATIENCE_S = 60


def check(db_urls: list[str], acked: dict[int, Acked]) -> Result:
    """Raises CheckFailed when the databases cannot be read (after FETCH_PATIENCE_S)."""
    import psycopg
    import tenacity

    fetching = tenacity.Retrying(retry=tenacity.retry_if_exception_type(psycopg.OperationalError),
                                 stop=tenacity.stop_after_delay(FETCH_PATIENCE_S),
                                 wait=tenacity.wait_exponential(min=0.5, max=5), reraise=True)
    try:
        stored = fetching(fetch, db_urls, sorted(acked))
    except psycopg.Error as error:
        raise CheckFailed(f"durability not checked: the databases could not be read ({error})") from error
    return compare(acked, stored, databases=len(db_urls))


class CheckFailed(Exception):
    """The check could not read what was stored: nothing can be said of what was lost."""
