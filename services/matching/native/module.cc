// The _matching_native module's function table (native.hpp).
#include "native.hpp"

namespace {

using bourse::matching_native::find_sorted;
using bourse::matching_native::int_array_literal;
using bourse::matching_native::iso_us;
using bourse::matching_native::key_table_from_packed;
using bourse::matching_native::pack_key_entries;
using bourse::matching_native::order_bytes;
using bourse::matching_native::state_rows;
using bourse::matching_native::submit_keys;
using bourse::matching_native::untrack;

using bourse::matching_native::fastcall;

PyMethodDef methods[] = {
    {"order_bytes", fastcall<order_bytes>(), METH_FASTCALL,
     "order_bytes(row, fills=()) -> bytes: the Order message of an orders-table row (shard_write.OrderRow)\n"
     "with its fills, each (trade_id, price, quantity, maker, time_us)."},
    {"submit_keys", fastcall<submit_keys>(), METH_FASTCALL,
     "submit_keys(account_id, symbol, client_order_id, side, order_type, time_in_force, price, quantity,\n"
     "post_only, self_trade_prevention) -> (key_digest, request_hash), as client_ids.py defines them\n"
     "(key_digest 0 without a client_order_id)."},
    {"int_array_literal", fastcall<int_array_literal>(), METH_FASTCALL,
     "int_array_literal(list) -> str | None: the list as a PostgreSQL array literal, or None unless every\n"
     "item is an int within int64."},
    {"iso_us", fastcall<iso_us>(), METH_FASTCALL,
     "iso_us(microseconds) -> str: the time since the epoch as datetime.isoformat() writes it in UTC."},
    {"find_sorted", fastcall<find_sorted>(), METH_FASTCALL,
     "find_sorted(ids, id) -> int: where id is in ids (a contiguous int64 buffer in ascending order), else -1."},
    {"state_rows", fastcall<state_rows>(), METH_FASTCALL,
     "state_rows(states, rows, columns, index, texts, coid) -> bytes: writes states[i] (a list of one slots\n"
     "class) as row i of `rows` (a writable buffer of len(states) equal rows) and returns their coid slots'\n"
     "UTF-8, concatenated. columns: (slot, offset in the row, kind) each, kind 'q' int64, 'I'/'H'/'B' unsigned\n"
     "of 4/2/1 bytes, 't' a str's number in `index` (uint16; a new one is appended to `texts` and numbered).\n"
     "coid: (slot, offset column, length column, base): each row's UTF-8 offset (from base) and length, uint32."},
    {"untrack", fastcall<untrack>(), METH_FASTCALL,
     "untrack(obj) -> obj: takes obj out of the cyclic garbage collector's view (only for an object that can\n"
     "never be in a reference cycle, such as an OrderState: ints and strs)."},
    {"key_table_from_packed", fastcall<key_table_from_packed>(), METH_FASTCALL,
     "key_table_from_packed(window_ms, epoch_ms, data) -> KeyTable: the keys of KeyTable.packed() or entries()."},
    {"pack_key_entries", fastcall<pack_key_entries>(), METH_FASTCALL,
     "pack_key_entries(data) -> bytes: KeyTable.entries() in digest order, as KeyTable.packed() gives them."},
    {nullptr, nullptr, 0, nullptr},
};

PyModuleDef module = {PyModuleDef_HEAD_INIT, "_matching_native",
                      "The matching process's per-order work in C++: Order bytes, digests, text forms.", -1,
                      methods};

}  // namespace

PyMODINIT_FUNC PyInit__matching_native() {
  PyObject* made = PyModule_Create(&module);
  if (made != nullptr && !bourse::matching_native::add_key_table(made)) Py_CLEAR(made);
  return made;
}
