// order_bytes: an order's state as the bytes of a bourse.type.v1.Order message.
//
// The matching process answers every command with the order after it, and publishes
// the same Order on the account's update stream. Built through the protobuf runtime
// (a message from keyword arguments, its Timestamps from dicts, then a copy into the
// response) that cost about 3 us per answer, the largest single item of the process's
// profile; written here straight from the order's row it costs a few hundred ns, and
// the bytes travel as they are (a bytes field and a message field share one wire
// form). The encoding is proto3's: fields in number order, zero values left out, the
// Timestamps always present (as the message the shard built set them). A test checks
// it against the protobuf runtime, byte for byte.
#include <cstdint>
#include <string>

#include "native.hpp"

namespace bourse::matching_native {
namespace {

// The row's columns (services/matching/shard_write.py OrderRow, models.py ORDER_COLUMNS).
enum Column : Py_ssize_t {
  kOrderId, kAccountId, kClientOrderId, kSymbol, kSide, kOrderType, kTimeInForce, kStatus,
  kPrice, kQuantity, kFilled, kLeaves, kReason, kCreateUs, kUpdateUs, kStopPrice, kTriggered, kDisplay, kExpireUs,
  kColumns
};
// A fill: (trade_id, price, quantity, maker, time_us).
constexpr Py_ssize_t kFillColumns = 5;

constexpr int kVarint = 0, kLengthDelimited = 2;

class Writer {
 public:
  void varint(std::uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(static_cast<char>(v | 0x80));
      v >>= 7;
    }
    out_.push_back(static_cast<char>(v));
  }
  void tag(int field, int wire_type) { varint(static_cast<std::uint64_t>(field) << 3 | wire_type); }
  // int64, int32 and enum fields alike: a negative value is its 64-bit two's complement.
  void int_field(int field, std::int64_t v) {
    if (v == 0) return;
    tag(field, kVarint);
    varint(static_cast<std::uint64_t>(v));
  }
  void bytes_field(int field, const char* data, Py_ssize_t size) {
    if (size == 0) return;
    tag(field, kLengthDelimited);
    varint(static_cast<std::uint64_t>(size));
    out_.append(data, static_cast<std::size_t>(size));
  }
  void message_field(int field, const std::string& body) {  // present even when empty
    tag(field, kLengthDelimited);
    varint(body.size());
    out_.append(body);
  }
  std::string& str() { return out_; }

 private:
  std::string out_;
};

std::string timestamp_us(std::int64_t us) {
  // Floor division, as Python's: a time before the epoch has nanos in [0, 1e9).
  std::int64_t seconds = us / 1'000'000, micros = us % 1'000'000;
  if (micros < 0) {
    micros += 1'000'000;
    seconds -= 1;
  }
  Writer w;
  w.int_field(1, seconds);
  w.int_field(2, micros * 1000);
  return std::move(w.str());
}

// `item` is a str (or None where allowed: written as nothing).
bool as_text(PyObject* item, const char** data, Py_ssize_t* size, bool none_ok) {
  if (none_ok && item == Py_None) {
    *data = "";
    *size = 0;
    return true;
  }
  if (!PyUnicode_Check(item)) {
    PyErr_Format(PyExc_TypeError, "expected a str, got %.100s", Py_TYPE(item)->tp_name);
    return false;
  }
  *data = PyUnicode_AsUTF8AndSize(item, size);
  return *data != nullptr;
}

bool write_fill(Writer& order, PyObject* fill) {
  if (!PyTuple_Check(fill) || PyTuple_GET_SIZE(fill) != kFillColumns) {
    PyErr_SetString(PyExc_TypeError, "a fill is a tuple (trade_id, price, quantity, maker, time_us)");
    return false;
  }
  std::int64_t trade_id, price, quantity, time_us;
  if (!as_int64(PyTuple_GET_ITEM(fill, 0), &trade_id) || !as_int64(PyTuple_GET_ITEM(fill, 1), &price) ||
      !as_int64(PyTuple_GET_ITEM(fill, 2), &quantity) || !as_int64(PyTuple_GET_ITEM(fill, 4), &time_us)) {
    return false;
  }
  int maker = PyObject_IsTrue(PyTuple_GET_ITEM(fill, 3));
  if (maker < 0) return false;
  Writer w;
  w.int_field(1, trade_id);
  w.int_field(2, price);
  w.int_field(3, quantity);
  w.int_field(4, maker);
  w.message_field(5, timestamp_us(time_us));
  order.message_field(14, w.str());
  return true;
}

}  // namespace

PyObject* order_bytes(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs < 1 || nargs > 2) {
    PyErr_SetString(PyExc_TypeError, "order_bytes(row, fills=())");
    return nullptr;
  }
  PyObject* row = args[0];
  if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != kColumns) {
    PyErr_SetString(PyExc_TypeError, "row: a tuple of the orders table's 19 columns");
    return nullptr;
  }
  std::int64_t ints[kColumns] = {};
  for (Py_ssize_t column : {kOrderId, kAccountId, kSide, kOrderType, kTimeInForce, kStatus, kPrice, kQuantity,
                            kFilled, kLeaves, kCreateUs, kUpdateUs, kStopPrice, kTriggered, kDisplay, kExpireUs}) {
    if (!as_int64(PyTuple_GET_ITEM(row, column), &ints[column])) return nullptr;
  }
  const char *client_order_id, *symbol, *reason;
  Py_ssize_t client_order_id_size, symbol_size, reason_size;
  if (!as_text(PyTuple_GET_ITEM(row, kClientOrderId), &client_order_id, &client_order_id_size, true) ||
      !as_text(PyTuple_GET_ITEM(row, kSymbol), &symbol, &symbol_size, false) ||
      !as_text(PyTuple_GET_ITEM(row, kReason), &reason, &reason_size, false)) {
    return nullptr;
  }
  Writer w;
  w.int_field(1, ints[kOrderId]);
  w.bytes_field(2, client_order_id, client_order_id_size);
  w.int_field(3, ints[kAccountId]);
  w.bytes_field(4, symbol, symbol_size);
  w.int_field(5, ints[kSide]);
  w.int_field(6, ints[kOrderType]);
  w.int_field(7, ints[kTimeInForce]);
  w.int_field(8, ints[kPrice]);
  w.int_field(9, ints[kQuantity]);
  w.int_field(10, ints[kFilled]);
  w.int_field(11, ints[kLeaves]);
  w.int_field(12, ints[kStatus]);
  w.bytes_field(13, reason, reason_size);
  if (nargs == 2) {
    PyObject* fills = PySequence_Fast(args[1], "fills: a sequence of fill tuples");
    if (fills == nullptr) return nullptr;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(fills);
    PyObject** items = PySequence_Fast_ITEMS(fills);
    for (Py_ssize_t i = 0; i < count; ++i) {
      if (!write_fill(w, items[i])) {
        Py_DECREF(fills);
        return nullptr;
      }
    }
    Py_DECREF(fills);
  }
  w.message_field(15, timestamp_us(ints[kCreateUs]));
  w.message_field(16, timestamp_us(ints[kUpdateUs]));
  w.int_field(17, ints[kStopPrice]);
  w.int_field(18, ints[kTriggered] != 0 ? 1 : 0);
  w.int_field(19, ints[kDisplay]);
  if (ints[kExpireUs] != 0) w.message_field(20, timestamp_us(ints[kExpireUs]));
  return PyBytes_FromStringAndSize(w.str().data(), static_cast<Py_ssize_t>(w.str().size()));
}

bool as_int64(PyObject* item, std::int64_t* out) {
  if (!PyLong_Check(item)) {
    PyErr_Format(PyExc_TypeError, "expected an int, got %.100s", Py_TYPE(item)->tp_name);
    return false;
  }
  *out = PyLong_AsLongLong(item);
  return !(*out == -1 && PyErr_Occurred());
}

}  // namespace bourse::matching_native
