"""Every reason the client-facing services raise, read from their code, is one the SDK
maps to an exception under the right code: its own class where a caller acts on it
differently, its code's class where the code says it all (an invalid argument names its
field; unavailable means try again)."""

from __future__ import annotations

import ast
from pathlib import Path

import grpc
import services.common.errors
import services.order
from bourse_client import errors

# Codes whose reasons tell a caller nothing to do differently: the class is the code's.
BY_CODE_ONLY = {"INVALID_ARGUMENT", "UNAVAILABLE", "INTERNAL", "ABORTED"}


def raised_reasons() -> dict[str, str]:
    """Reason -> code name, for each BourseError(grpc.StatusCode.X, "REASON", ...) and
    BourseError(code, "REASON") whose code is the argument's name in the services."""
    found = {}
    sources = list(Path(services.order.__file__).parent.glob("*.py"))
    sources += list(Path(services.common.errors.__file__).parent.glob("*.py"))
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and getattr(node.func, "id", "") == "BourseError"
                    and len(node.args) >= 2):
                continue
            code, reason = node.args[:2]
            if isinstance(code, ast.Attribute) and isinstance(reason, ast.Constant):
                found[reason.value] = code.attr
    return found


def test_every_reason_the_services_raise_has_its_class():
    reasons = raised_reasons()
    assert {"ORDER_DONE", "ORDER_NOT_FOUND", "RATE_LIMITED", "MISSING_API_KEY"} <= set(reasons), reasons
    for reason, code in reasons.items():
        cls = errors.BY_REASON.get(reason)
        if code in BY_CODE_ONLY:
            assert cls is None or cls.code == grpc.StatusCode[code], reason
            continue
        assert cls is not None, f"{reason} ({code}) has no class in bourse_client.errors"
        assert cls.code == grpc.StatusCode[code] and issubclass(cls, errors.BY_CODE[cls.code]), reason


def test_the_matching_shards_refusals_that_reach_clients_have_their_class():
    # Raised as `BourseError(grpc.StatusCode.X, reason, ...)` with the shard's reason in a
    # variable, so named here: CLIENT_ORDER_ID_REUSED, QUANTITY_NOT_ABOVE_FILLED,
    # WOULD_TAKE_LIQUIDITY (services/order/orders.py).
    assert errors.BY_REASON["CLIENT_ORDER_ID_REUSED"].code == grpc.StatusCode.ALREADY_EXISTS
    for reason in ("QUANTITY_NOT_ABOVE_FILLED", "WOULD_TAKE_LIQUIDITY"):
        assert errors.BY_REASON[reason].code == grpc.StatusCode.FAILED_PRECONDITION
    from services.order.orders import RISK_REFUSALS
    for reason in RISK_REFUSALS:  # BourseError(grpc.StatusCode.FAILED_PRECONDITION, reason, ...)
        assert errors.BY_REASON[reason].code == grpc.StatusCode.FAILED_PRECONDITION, reason
    source = (Path(services.order.__file__).parent / "orders.py").read_text()
    assert all(f'"{reason}"' in source for reason in ("CLIENT_ORDER_ID_REUSED", "QUANTITY_NOT_ABOVE_FILLED",
                                                      "WOULD_TAKE_LIQUIDITY"))
