// _matching_native: the matching process's per-order work that Python does slowly
// (module.cc lists the functions). Plain CPython (METH_FASTCALL): one call per order,
// no binding layer in between.
#pragma once

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <cstdint>

namespace bourse::matching_native {

// order_bytes(row, fills=()) -> bytes (order_wire.cc)
PyObject* order_bytes(PyObject*, PyObject* const* args, Py_ssize_t nargs);
// submit_keys(account_id, symbol, client_order_id, side, order_type, time_in_force,
//             price, quantity, post_only, self_trade_prevention) -> (key_digest, request_hash)
// (submit_keys.cc)
PyObject* submit_keys(PyObject*, PyObject* const* args, Py_ssize_t nargs);

// int_array_literal(list) -> str | None: "{1,-2,3}", or None unless every item is an
// int within int64 (text_forms.cc)
PyObject* int_array_literal(PyObject*, PyObject* const* args, Py_ssize_t nargs);
// iso_us(microseconds since the epoch) -> str: datetime's isoformat() in UTC (text_forms.cc)
PyObject* iso_us(PyObject*, PyObject* const* args, Py_ssize_t nargs);

// KeyTable (key_table.cc): a shard's idempotency keys. add_key_table puts the type in
// the module; key_table_from_packed(window_ms, epoch_ms, data) -> KeyTable, and
// pack_key_entries(data) -> bytes: KeyTable.entries() sorted by digest, as packed() is.
bool add_key_table(PyObject* module);
PyObject* key_table_from_packed(PyObject*, PyObject* const* args, Py_ssize_t nargs);
PyObject* pack_key_entries(PyObject*, PyObject* const* args, Py_ssize_t nargs);

// state_rows(states, rows, columns, index, texts, coid) -> bytes: objects of one slots
// class as packed rows (state_rows.cc; module.cc says how)
PyObject* state_rows(PyObject*, PyObject* const* args, Py_ssize_t nargs);

// find_sorted(ids, id) -> int: the index of id in a sorted int64 buffer, else -1 (find_sorted.cc)
PyObject* find_sorted(PyObject*, PyObject* const* args, Py_ssize_t nargs);

// untrack(obj) -> obj: out of the cyclic GC's view (gc_untrack.cc: only for objects that
// cannot be in a reference cycle)
PyObject* untrack(PyObject*, PyObject* const* args, Py_ssize_t nargs);

// A METH_FASTCALL function as a PyMethodDef's PyCFunction.
template <PyObject* (*F)(PyObject*, PyObject* const*, Py_ssize_t)>
PyCFunction fastcall() {
  return reinterpret_cast<PyCFunction>(reinterpret_cast<void (*)()>(F));
}

// Shared: False with a Python error set unless `item` is an int in int64.
bool as_int64(PyObject* item, std::int64_t* out);

}  // namespace bourse::matching_native
