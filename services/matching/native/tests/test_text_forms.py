"""int_array_literal and iso_us against the Python forms they replace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from _matching_native import int_array_literal, iso_us
from hypothesis import given
from hypothesis import strategies as st

INT64 = st.integers(-(2**63), 2**63 - 1)
# Every microsecond a datetime can hold.
DATETIME_US = st.integers(-62_135_596_800_000_000, 253_402_300_799_999_999)


@given(st.lists(INT64, max_size=50))
def test_an_int_column_is_written_as_str_writes_it(column):
    assert int_array_literal(column) == "{" + ",".join(map(str, column)) + "}"


@pytest.mark.parametrize("column", [[1, None], [1, True], [1, 2.0], [2**63], [-(2**63) - 1], [1, "2"]])
def test_anything_but_int64_ints_is_left_to_the_caller(column):
    assert int_array_literal(column) is None


@given(DATETIME_US)
def test_a_time_is_written_as_isoformat_writes_it(us):
    assert iso_us(us) == (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=us)).isoformat()


def test_worked_examples_of_times():
    assert iso_us(0) == "1970-01-01T00:00:00+00:00"
    assert iso_us(1_733_234_234_000_001) == "2024-12-03T13:57:14.000001+00:00"
    assert iso_us(951_782_400_000_000) == "2000-02-29T00:00:00+00:00"  # a leap day
    assert iso_us(-1) == "1969-12-31T23:59:59.999999+00:00"


def test_a_time_datetime_cannot_hold_is_refused():
    with pytest.raises(OverflowError):
        iso_us(253_402_300_800_000_000)
