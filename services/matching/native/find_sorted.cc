// find_sorted(ids, id) -> int: an id's place in a sorted int64 buffer (native.hpp).
#include <algorithm>
#include <cstdint>
#include <cstring>

#include "native.hpp"

namespace bourse::matching_native {

// find_sorted(ids, id) -> int: where `id` is in `ids` (int64s in ascending order, any
// buffer: a numpy array), else -1. numpy's searchsorted costs about a microsecond a call
// before it searches; the shard looks up finished and packed working orders by id this
// way for every cancel or modify of an order it no longer holds as an object.
PyObject* find_sorted(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  std::int64_t id;
  if (nargs != 2) {
    PyErr_SetString(PyExc_TypeError, "find_sorted(ids, id)");
    return nullptr;
  }
  if (!as_int64(args[1], &id)) return nullptr;
  Py_buffer view;
  if (PyObject_GetBuffer(args[0], &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return nullptr;
  const bool int64s = view.itemsize == 8 && view.format != nullptr &&
                      (std::strcmp(view.format, "q") == 0 || std::strcmp(view.format, "l") == 0 ||
                       std::strcmp(view.format, "<q") == 0 || std::strcmp(view.format, "<l") == 0);
  if (!int64s) {
    PyBuffer_Release(&view);
    PyErr_SetString(PyExc_TypeError, "find_sorted: ids must be a contiguous buffer of int64");
    return nullptr;
  }
  const auto* first = static_cast<const std::int64_t*>(view.buf);
  const auto* last = first + view.len / 8;
  const auto* at = std::lower_bound(first, last, id);
  const Py_ssize_t found = at != last && *at == id ? at - first : -1;
  PyBuffer_Release(&view);
  return PyLong_FromSsize_t(found);
}

}  // namespace bourse::matching_native
