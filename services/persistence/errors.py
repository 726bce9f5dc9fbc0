"""What the store raises, and the checks shared by the store and the snapshot writer.

service.py maps these exceptions to gRPC status codes: StoreUnavailable -> UNAVAILABLE
(retry), SequenceTaken -> a conflict, JournalPruned -> FAILED_PRECONDITION (read from a
newer snapshot), InvalidArgument -> INVALID_ARGUMENT naming the field.
UNAVAILABLE lists the SQLAlchemy errors that mean the database, not the input, failed.
"""

from __future__ import annotations

from sqlalchemy import exc

# SMALLINT column.
MAX_MATCHING_SHARD = 32767


class StoreUnavailable(Exception):
    """A database could not be reached or failed mid-transaction (that shard committed nothing)."""


class SequenceTaken(Exception):
    """A journal sequence is already stored with a different command: another process
    is writing as this matching shard (or it reused a sequence). Nothing was committed
    on the home database."""


class JournalPruned(Exception):
    """The journal entries right after `after` are gone: pruned, being older than every
    kept snapshot. Replaying from there would skip commands; the caller must restore a
    snapshot at first_retained - 1 or later and read the journal after it."""

    def __init__(self, matching_shard: int, after: int, first_retained: int):
        super().__init__(
            f"journal of matching shard {matching_shard}: entries after sequence {after} were pruned, the first "
            f"retained sequence is {first_retained}; restore a newer snapshot (sequence {first_retained - 1} or "
            "later) and read the journal after it")
        self.matching_shard = matching_shard
        self.after = after
        self.first_retained = first_retained


class InvalidArgument(ValueError):
    """Input the store refuses; `field` names what was wrong."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


# Errors meaning "the database is not there or the connection broke", as opposed to
# errors in what we sent it (IntegrityError, DataError, ProgrammingError).
UNAVAILABLE = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError, exc.DisconnectionError)


def check_shard(matching_shard: int) -> None:
    if not 0 <= matching_shard <= MAX_MATCHING_SHARD:
        raise InvalidArgument("matching_shard", f"must be 0-{MAX_MATCHING_SHARD}, got {matching_shard}")


def short(error: Exception) -> str:
    text = str(getattr(error, "orig", None) or error).strip().splitlines()
    return text[0] if text else type(error).__name__
