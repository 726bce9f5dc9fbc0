// state_rows: working orders' descriptions (OrderState) as packed snapshot rows (native.hpp).
//
// A snapshot taken in the matching process packs every order that came to rest since the
// last one, with the shard's books held (live_orders.py). Built a column at a time with
// numpy that cost about 0.8 us an order, most of a 50-70 ms hold at 100,000 commands a
// shard. Here one pass reads each order's slots straight from the object (a slots class
// keeps them at fixed offsets, which its member descriptors give) and writes the row.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "native.hpp"
#include "structmember.h"  // T_OBJECT_EX (3.11)

namespace bourse::matching_native {
namespace {

// kind: 'q' int64; 'I', 'H', 'B' unsigned of 4, 2 and 1 bytes; 't' a str numbered in
// `index` (uint16).
struct Column {
  Py_ssize_t slot;    // the value's offset in the object
  Py_ssize_t offset;  // its offset in the row
  char kind;
};

// The offset of slot `name` in instances of `type`, or -1 with an error set.
Py_ssize_t slot_offset(PyTypeObject* type, PyObject* name) {
  PyObject* descriptor = PyObject_GetAttr(reinterpret_cast<PyObject*>(type), name);
  if (descriptor == nullptr) return -1;
  Py_ssize_t offset = -1;
  if (Py_IS_TYPE(descriptor, &PyMemberDescr_Type)) {
    const PyMemberDef* member = reinterpret_cast<PyMemberDescrObject*>(descriptor)->d_member;
    if (member->type == T_OBJECT_EX) offset = member->offset;
  }
  Py_DECREF(descriptor);
  if (offset < 0) PyErr_Format(PyExc_TypeError, "state_rows: %R is not a slot of %s", name, type->tp_name);
  return offset;
}

PyObject* slot_value(PyObject* state, Py_ssize_t slot) {
  PyObject* value = *reinterpret_cast<PyObject**>(reinterpret_cast<char*>(state) + slot);
  if (value == nullptr) PyErr_SetString(PyExc_AttributeError, "state_rows: an order has a slot unset");
  return value;
}

// The number of text `value` in `index` (str -> int), appending it to `texts` if new.
bool text_number(PyObject* index, PyObject* texts, PyObject* value, std::uint64_t* out) {
  if (!PyUnicode_Check(value)) {
    PyErr_SetString(PyExc_TypeError, "state_rows: a text column holds a non-str");
    return false;
  }
  PyObject* known = PyDict_GetItemWithError(index, value);  // borrowed
  if (known != nullptr) {
    std::int64_t number;
    if (!as_int64(known, &number)) return false;
    *out = static_cast<std::uint64_t>(number);
    return true;
  }
  if (PyErr_Occurred()) return false;
  const Py_ssize_t number = PyList_GET_SIZE(texts);
  PyObject* boxed = PyLong_FromSsize_t(number);
  const bool added = boxed != nullptr && PyList_Append(texts, value) == 0 && PyDict_SetItem(index, value, boxed) == 0;
  Py_XDECREF(boxed);
  *out = static_cast<std::uint64_t>(number);
  return added;
}

// The bytes a column of this kind takes in a row.
Py_ssize_t width_of(char kind) { return kind == 'q' ? 8 : kind == 'I' ? 4 : kind == 'B' ? 1 : 2; }

template <typename T>
void put(char* row, Py_ssize_t offset, T value) {
  std::memcpy(row + offset, &value, sizeof value);  // rows are packed: unaligned
}

// An unsigned column's value ('I', 'H', 'B', or a text's number).
bool store(char* row, const Column& column, std::uint64_t value) {
  if (value > (std::uint64_t{1} << (8 * width_of(column.kind))) - 1) {
    PyErr_SetString(PyExc_OverflowError, "state_rows: a value does not fit its column");
    return false;
  }
  if (column.kind == 'I') put(row, column.offset, static_cast<std::uint32_t>(value));
  else if (column.kind == 'B') put(row, column.offset, static_cast<std::uint8_t>(value));
  else put(row, column.offset, static_cast<std::uint16_t>(value));
  return true;
}

bool fill_row(PyObject* state, char* row, const std::vector<Column>& columns, PyObject* index, PyObject* texts) {
  for (const Column& column : columns) {
    PyObject* value = slot_value(state, column.slot);
    if (value == nullptr) return false;
    if (column.kind == 't') {
      std::uint64_t number;
      if (!text_number(index, texts, value, &number) || !store(row, column, number)) return false;
      continue;
    }
    std::int64_t number;
    if (!as_int64(value, &number)) return false;
    if (column.kind == 'q') {
      put(row, column.offset, number);
    } else if (number < 0 || !store(row, column, static_cast<std::uint64_t>(number))) {
      if (!PyErr_Occurred()) PyErr_SetString(PyExc_OverflowError, "state_rows: a negative unsigned value");
      return false;
    }
  }
  return true;
}

bool parse_columns(PyTypeObject* type, PyObject* spec, Py_ssize_t row_size, std::vector<Column>* columns) {
  if (!PyTuple_Check(spec)) {
    PyErr_SetString(PyExc_TypeError, "state_rows: columns must be a tuple of (slot, offset, kind)");
    return false;
  }
  for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(spec); ++i) {
    PyObject *name, *offset_object;
    const char* kind;
    if (!PyArg_ParseTuple(PyTuple_GET_ITEM(spec, i), "UOs", &name, &offset_object, &kind)) return false;
    Column column{slot_offset(type, name), PyLong_AsSsize_t(offset_object), kind[0]};
    if (column.slot < 0 || (column.offset == -1 && PyErr_Occurred())) return false;
    if (std::strlen(kind) != 1 || std::strchr("qIHBt", column.kind) == nullptr || column.offset < 0 ||
        column.offset + width_of(column.kind) > row_size) {
      PyErr_Format(PyExc_ValueError, "state_rows: column %R: bad offset or kind", name);
      return false;
    }
    columns->push_back(column);
  }
  return true;
}

}  // namespace

// state_rows(states, rows, columns, index, texts, coid) -> bytes: see module.cc.
PyObject* state_rows(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 6 || !PyList_Check(args[0]) || !PyDict_Check(args[3]) || !PyList_Check(args[4])) {
    PyErr_SetString(PyExc_TypeError, "state_rows(states: list, rows, columns, index: dict, texts: list, coid)");
    return nullptr;
  }
  PyObject *states = args[0], *index = args[3], *texts = args[4];
  const Py_ssize_t count = PyList_GET_SIZE(states);
  PyObject *coid_name, *coid_offset_object, *coid_length_object;
  unsigned long long blob_base;
  if (!PyArg_ParseTuple(args[5], "UOOK", &coid_name, &coid_offset_object, &coid_length_object, &blob_base))
    return nullptr;
  Py_buffer view;
  if (PyObject_GetBuffer(args[1], &view, PyBUF_WRITABLE | PyBUF_C_CONTIGUOUS) < 0) return nullptr;
  PyObject* result = nullptr;
  std::vector<Column> columns;
  std::string blob;
  const Py_ssize_t row_size = count ? view.len / count : 0;
  if (count == 0) {
    result = PyBytes_FromStringAndSize(nullptr, 0);
  } else if (view.len % count != 0) {
    PyErr_SetString(PyExc_ValueError, "state_rows: rows must hold one row per state");
  } else {
    PyTypeObject* type = Py_TYPE(PyList_GET_ITEM(states, 0));
    const Py_ssize_t coid_slot = slot_offset(type, coid_name);
    const Column coid_offset{coid_slot, PyLong_AsSsize_t(coid_offset_object), 'I'};
    const Column coid_length{coid_slot, PyLong_AsSsize_t(coid_length_object), 'I'};
    bool ok = coid_slot >= 0 && !PyErr_Occurred() && parse_columns(type, args[2], row_size, &columns);
    if (ok && (coid_offset.offset < 0 || coid_offset.offset + width_of('I') > row_size || coid_length.offset < 0 ||
               coid_length.offset + width_of('I') > row_size)) {
      PyErr_SetString(PyExc_ValueError, "state_rows: bad client_order_id column offsets");
      ok = false;
    }
    char* row = static_cast<char*>(view.buf);
    for (Py_ssize_t i = 0; ok && i < count; ++i, row += row_size) {
      PyObject* state = PyList_GET_ITEM(states, i);
      if (!Py_IS_TYPE(state, type)) {
        PyErr_SetString(PyExc_TypeError, "state_rows: the states are not all of one type");
        ok = false;
        break;
      }
      ok = fill_row(state, row, columns, index, texts);
      PyObject* coid = ok ? slot_value(state, coid_slot) : nullptr;
      Py_ssize_t size = 0;
      const char* utf8 = coid != nullptr && PyUnicode_Check(coid) ? PyUnicode_AsUTF8AndSize(coid, &size) : nullptr;
      if (ok && utf8 == nullptr && !PyErr_Occurred())
        PyErr_SetString(PyExc_TypeError, "state_rows: a client_order_id is not a str");
      ok = utf8 != nullptr && store(row, coid_offset, blob_base + blob.size()) && store(row, coid_length, size);
      if (ok) blob.append(utf8, static_cast<std::size_t>(size));
    }
    if (ok) result = PyBytes_FromStringAndSize(blob.data(), static_cast<Py_ssize_t>(blob.size()));
  }
  PyBuffer_Release(&view);
  return result;
}

}  // namespace bourse::matching_native
