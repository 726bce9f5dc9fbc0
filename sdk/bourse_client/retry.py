"""When the SDK sends a call again (tenacity does the looping).

A call is sent again only when sending it twice cannot do twice what once would: a
submit (its client_order_id makes a repeat return the original order, on any replica,
after any crash), a cancel (a repeat after it took effect answers OrderDone), and the
reads. A modify is not: its values are absolute, but a repeat would move the order to
the back of its queue again. Errors that are retried: UNAVAILABLE (a replica, shard or
store is down, or the connection broke) and RESOURCE_EXHAUSTED with the server's
advice (RATE_LIMITED, TOO_MANY_IN_FLIGHT). The wait is the server's RetryInfo when it
sent one, else exponential backoff with jitter; the total is bounded by `RetryPolicy.for_s`.
"""

from __future__ import annotations

from dataclasses import dataclass

import tenacity

from .errors import BourseError


@dataclass(frozen=True)
class RetryPolicy:
    """for_s: how long the SDK keeps trying one call before it raises the last error
    (0: never retry); initial_s, max_s: the backoff between tries when the server gave
    no advice."""

    for_s: float = 10.0
    initial_s: float = 0.05
    max_s: float = 2.0

    def _kwargs(self) -> dict:
        backoff = tenacity.wait_exponential_jitter(initial=self.initial_s, max=self.max_s)

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception()
            advice = getattr(error, "retry_after_s", None)
            return advice if advice is not None else backoff(state)

        return dict(
            retry=tenacity.retry_if_exception(lambda e: isinstance(e, BourseError) and e.retryable),
            wait=wait,
            stop=tenacity.stop_after_delay(self.for_s),
            reraise=True,
        )

    def retrying(self) -> tenacity.Retrying:
        return tenacity.Retrying(**self._kwargs())

    def async_retrying(self) -> tenacity.AsyncRetrying:
        return tenacity.AsyncRetrying(**self._kwargs())


NEVER = RetryPolicy(for_s=0)
