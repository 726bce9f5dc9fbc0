"""KeyTable (key_table.cc) against client_ids.ClientOrderIds, the same table in Python:
the same answers for any sequence of binds, lookups and reclaims, and the same packed
records for the keys both hold."""

from __future__ import annotations

import numpy as np
import pytest
from _matching_native import KeyTable, key_table_from_packed, pack_key_entries
from hypothesis import given, settings
from hypothesis import strategies as st

from services.common.ids import EPOCH_MS
from services.matching.client_ids import KEY_WINDOW_MS, PACKED_KEY, ClientOrderIds, key_digest

START_NS = (EPOCH_MS + 10**9) * 10**6
WINDOW_NS = KEY_WINDOW_MS * 10**6


def table() -> KeyTable:
    return KeyTable(KEY_WINDOW_MS, EPOCH_MS)


def test_a_worked_example_binds_answers_forgets_and_binds_again():
    keys, working = table(), {12}
    done, works = key_digest((1, "AAPL", "done")), key_digest((1, "AAPL", "works"))
    keys.add(done, 11, 111, START_NS, working)
    keys.add(works, 12, 112, START_NS, working)
    assert len(keys) == 2
    assert keys.owner(done) == (11, 111) and keys.owner(works) == (12, 112)
    assert keys.owner(key_digest((2, "AAPL", "done"))) is None  # another account's key
    # Within the window (its last millisecond included) both name their orders.
    assert keys.owner(done, START_NS + WINDOW_NS, working) == (11, 111)
    # Past it, only the key of a working order does, before any memory is reclaimed.
    later = START_NS + WINDOW_NS + 10**6
    assert keys.owner(done, later, working) is None
    assert keys.owner(works, later, working) == (12, 112)
    assert keys.owner(works, later) is None  # nothing said to work
    # A reclaim forgets the done order's key and keeps the working one's (queued again,
    # so looked at again until the limit, as in Python).
    assert keys.reclaim(later, working, 10) == 10
    assert len(keys) == 1 and keys.owner(done) is None and keys.owner(works) == (12, 112)
    # Once its order is done, the working order's key goes too.
    keys.reclaim(later, set(), 10)
    assert len(keys) == 0
    # A key past the window may name a new order: bound again, for good.
    keys.add(done, 20, 120, later, set())
    keys.add(done, 21, 121, later + WINDOW_NS + 10**6, set())
    assert len(keys) == 1 and keys.owner(done) == (21, 121)


def test_each_bind_reclaims_a_few_of_the_oldest_keys_past_the_window():
    keys = table()
    for i in range(100):
        keys.add(key_digest((1, "A", str(i))), i + 1, 0, START_NS, ())
    later = START_NS + WINDOW_NS + 10**6
    for i in range(30):  # four looked at per bind: all 100 gone within 25 binds
        keys.add(key_digest((2, "A", str(i))), 1000 + i, 0, later, ())
    assert len(keys) == 30
    assert all(keys.owner(key_digest((1, "A", str(i)))) is None for i in range(100))


def test_packed_records_are_in_digest_order_and_restore_the_table():
    keys = table()
    for i in range(5000):
        keys.add(key_digest((i % 7, "MSFT", f"c{i}")), 10**12 + i, i * 3, START_NS + i * 10**6, ())
    packed = keys.packed()
    records = np.frombuffer(packed, PACKED_KEY)
    assert len(records) == 5000
    order = np.lexsort((records["digest_lo"], records["digest_hi"]))
    assert (order == np.arange(5000)).all()
    assert pack_key_entries(keys.entries()) == packed
    again = key_table_from_packed(KEY_WINDOW_MS, EPOCH_MS, packed)
    assert len(again) == 5000 and again.packed() == packed
    assert again.owner(key_digest((3, "MSFT", "c10"))) == (10**12 + 10, 30)
    # The Python table reads the same records, and writes them back alike.
    assert ClientOrderIds.from_packed(packed).packed() == packed
    # Restored, keys are reclaimed oldest bound first, as they were bound.
    again.reclaim(START_NS + WINDOW_NS + 2500 * 10**6, (), 10**6)
    assert len(again) == 5000 - 2500


def test_bad_packed_keys_are_refused():
    with pytest.raises(ValueError, match="40-byte records"):
        key_table_from_packed(KEY_WINDOW_MS, EPOCH_MS, b"x" * 41)
    twice = table()
    twice.add(5, 1, 2, START_NS, ())
    with pytest.raises(ValueError, match="twice"):
        key_table_from_packed(KEY_WINDOW_MS, EPOCH_MS, twice.packed() * 2)
    # Twice with different bind times too (not side by side once ordered by bind time).
    records = np.frombuffer(twice.packed() * 3, PACKED_KEY).copy()
    records["bound_ms"] = [5, 7, 9]
    records["digest_lo"][1] = 8  # the middle one, bound between the two, is another key
    with pytest.raises(ValueError, match="twice"):
        key_table_from_packed(KEY_WINDOW_MS, EPOCH_MS, records.tobytes())
    with pytest.raises(TypeError):
        table().owner("not a digest")


def test_a_working_check_that_raises_leaves_the_table_as_it_was():
    class Broken:
        def __contains__(self, order_id):
            raise RuntimeError("broken")

    keys = table()
    keys.add(7, 1, 2, START_NS, ())
    with pytest.raises(RuntimeError, match="broken"):
        keys.reclaim(START_NS + WINDOW_NS + 10**6, Broken(), 10)
    assert len(keys) == 1 and keys.owner(7) == (1, 2)


# Digests from a small set, so that keys are bound again, looked up and forgotten often.
DIGESTS = [key_digest((a, "S", str(c))) for a in range(3) for c in range(12)] + [0, 2**128 - 1]
DIGEST = st.sampled_from(DIGESTS)
STEP = st.one_of(
    st.tuples(st.just("add"), DIGEST, st.integers(1, 40), st.integers(0, 2**63 - 1)),
    st.tuples(st.just("owner"), DIGEST, st.booleans()),
    st.tuples(st.just("reclaim"), st.integers(0, 50)),
    st.tuples(st.just("wait"), st.integers(0, 2 * KEY_WINDOW_MS)),
    st.tuples(st.just("work"), st.frozensets(st.integers(1, 40), max_size=8)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(STEP, max_size=120))
def test_the_same_answers_as_the_python_table(steps):
    native, python = table(), ClientOrderIds()
    now, working = START_NS, frozenset()
    for step in steps:
        if step[0] == "add":
            _, digest, order_id, fingerprint = step
            native.add(digest, order_id, fingerprint, now, working)
            python.add(digest, order_id, fingerprint, now, working)
        elif step[0] == "owner":
            _, digest, timed = step
            assert native.owner(digest, now if timed else None, working) == \
                python.owner(digest, now if timed else None, working)
        elif step[0] == "reclaim":
            native.reclaim(now, working, step[1])
            python.reclaim(now, working, step[1])
        elif step[0] == "wait":
            now += step[1] * 10**6
        else:
            working = step[1]
        # Either may still hold keys the other forgot (forgetting does not change answers),
        # but every key that names an order now names the same one in both.
        for digest in DIGESTS:
            assert native.owner(digest, now, working) == python.owner(digest, now, working)
    # And what the native table holds is what it answers: its records restore it exactly.
    restored = key_table_from_packed(KEY_WINDOW_MS, EPOCH_MS, native.packed())
    assert restored.packed() == native.packed() and len(restored) == len(native)


@given(st.lists(st.integers(-(2**63), 2**63 - 1), unique=True), st.integers(-(2**63), 2**63 - 1))
def test_find_sorted_finds_an_id_where_it_is_and_nowhere_else(ids, probe):
    import bisect

    from _matching_native import find_sorted

    ids.sort()
    array = np.array(ids, dtype=np.int64)
    for index, order_id in enumerate(ids[:50]):
        assert find_sorted(array, order_id) == index
    at = bisect.bisect_left(ids, probe)
    assert find_sorted(array, probe) == (at if at < len(ids) and ids[at] == probe else -1)


def test_find_sorted_refuses_anything_but_int64s():
    from _matching_native import find_sorted

    with pytest.raises(TypeError, match="int64"):
        find_sorted(np.array([1, 2], dtype=np.int32), 1)
    with pytest.raises(TypeError):
        find_sorted([1, 2], 1)


@pytest.mark.parametrize("crowded", [False, True])
def test_a_table_that_grows_and_wraps_keeps_every_key(crowded):
    """Thousands of keys, rebound, forgotten past the window and kept while working, so
    that the ring grows, wraps and grows again, and the index parts grow (crowded: every
    digest in one part, which then holds them all): the same answers as the Python table."""
    native, python = table(), ClientOrderIds()
    digests = [(0x5A << 120 | i) if crowded else key_digest((i % 5, "S", str(i))) for i in range(3_000)]
    working = frozenset(range(0, 9_000, 97))
    now = START_NS
    for step in range(9_000):
        digest = digests[(step * 7) % len(digests)]  # each digest bound three times
        native.add(digest, step, step * 3, now, working)
        python.add(digest, step, step * 3, now, working)
        now += WINDOW_NS // 4_000  # past the window after 4,000 binds: the oldest are forgotten as binds go on
        if step % 1_000 == 999:
            for digest in digests:
                assert native.owner(digest, now, working) == python.owner(digest, now, working)
    assert len(native) == len(key_table_from_packed(KEY_WINDOW_MS, EPOCH_MS, native.packed()))


def test_a_full_ring_whose_head_is_mid_block_grows_keeping_every_key():
    """The ring's first and last blocks of positions share one when it fills with its head
    mid-block: growing splits that block (each add reclaims up to four forgotten keys, so
    the head moves on as keys are bound)."""
    native, python = table(), ClientOrderIds()
    digests = [key_digest((1, "S", str(i))) for i in range(3_000)]
    for i in range(300):
        native.add(digests[i], i, i, START_NS, ())
        python.add(digests[i], i, i, START_NS, ())
    now = START_NS + WINDOW_NS + 10**6  # the first 300 past the window: forgotten as the next are bound
    for i in range(300, 3_000):
        native.add(digests[i], i, i, now, ())
        python.add(digests[i], i, i, now, ())
        if i % 250 == 0 or i in (1_322, 1_323, 1_324, 2_346, 2_347, 2_348):
            for digest in digests:
                assert native.owner(digest, now, ()) == python.owner(digest, now, ())
    assert len(native) == 2_700
