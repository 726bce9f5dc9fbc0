// submit_keys: a submit's idempotency key digest and request fingerprint, as
// services/matching/client_ids.py defines them (key_digest, request_hash), in one call.
//
// Both are BLAKE2b of a short text (libb2, Debian's libb2-dev). In Python each took a
// formatted string, a hasher object and an int conversion: about 2 us per submit, the
// largest item of the shard's own work after the answers. The texts and digests must
// stay exactly Python's (snapshots and the journal's replays keep them); a test checks
// them against client_ids.py for arbitrary inputs.
#include <blake2.h>

#include <charconv>
#include <cstdint>
#include <string>

#include "native.hpp"

namespace bourse::matching_native {
namespace {

// bourse.type.v1.SelfTradePrevention: unset and CANCEL_INCOMING fingerprint alike.
constexpr std::int64_t kStpUnspecified = 0, kStpCancelIncoming = 1;

void append_int(std::string& text, std::int64_t v) {
  char digits[24];
  auto end = std::to_chars(digits, digits + sizeof digits, v).ptr;
  text.append(digits, end);
}

bool append_text(std::string& text, PyObject* item) {
  if (!PyUnicode_Check(item)) {
    PyErr_Format(PyExc_TypeError, "expected a str, got %.100s", Py_TYPE(item)->tp_name);
    return false;
  }
  Py_ssize_t size;
  const char* data = PyUnicode_AsUTF8AndSize(item, &size);
  if (data == nullptr) return false;
  text.append(data, static_cast<std::size_t>(size));
  return true;
}

}  // namespace

PyObject* submit_keys(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  enum {
    kAccount, kSymbol, kClientOrderId, kSide, kType, kTimeInForce, kPrice, kQuantity, kPostOnly, kStp,
    kDisplay, kStopPrice, kExpireUs, kArgs
  };
  // The last three are optional (0 when not given): a request without them fingerprints
  // exactly as before they existed.
  if (nargs != kDisplay && nargs != kArgs) {
    PyErr_SetString(PyExc_TypeError,
                    "submit_keys(account_id, symbol, client_order_id, side, order_type, time_in_force, price, "
                    "quantity, post_only, self_trade_prevention[, display_quantity, stop_price, gtd_expire_us])");
    return nullptr;
  }
  std::int64_t ints[kArgs] = {};
  for (int i : {kAccount, kSide, kType, kTimeInForce, kPrice, kQuantity, kStp}) {
    if (!as_int64(args[i], &ints[i])) return nullptr;
  }
  for (int i : {kDisplay, kStopPrice, kExpireUs}) {
    if (nargs == kArgs && !as_int64(args[i], &ints[i])) return nullptr;
  }
  int post_only = PyObject_IsTrue(args[kPostOnly]);
  if (post_only < 0) return nullptr;

  // request_hash: f"{symbol}|{side}|{order_type}|{time_in_force}|{price}|{quantity}"
  // [+ "|post_only"] [+ f"|stp={stp}"], BLAKE2b-64, big-endian, shifted right by one.
  std::string text;
  if (!append_text(text, args[kSymbol])) return nullptr;
  for (int i : {kSide, kType, kTimeInForce, kPrice, kQuantity}) {
    text.push_back('|');
    append_int(text, ints[i]);
  }
  if (post_only) text.append("|post_only");
  if (ints[kStp] != kStpUnspecified && ints[kStp] != kStpCancelIncoming) {
    text.append("|stp=");
    append_int(text, ints[kStp]);
  }
  // [+ f"|display={display}"] [+ f"|stop={stop}"] [+ f"|expire={gtd_expire_us}"], each when not 0.
  for (const auto& [name, i] : {std::pair{"|display=", kDisplay}, {"|stop=", kStopPrice}, {"|expire=", kExpireUs}}) {
    if (ints[i] != 0) {
      text.append(name);
      append_int(text, ints[i]);
    }
  }
  std::uint8_t fingerprint[8];
  if (blake2b(fingerprint, text.data(), nullptr, sizeof fingerprint, text.size(), 0) != 0) {
    PyErr_SetString(PyExc_RuntimeError, "blake2b failed");
    return nullptr;
  }
  std::uint64_t request_hash = 0;
  for (std::uint8_t byte : fingerprint) request_hash = request_hash << 8 | byte;

  // key_digest: f"{account_id}|{symbol}|{client_order_id}", BLAKE2b-128, little-endian;
  // 0 when the submit has no client_order_id (no key).
  PyObject* digest;
  PyObject* client_order_id = args[kClientOrderId];
  if (!PyUnicode_Check(client_order_id)) {
    PyErr_Format(PyExc_TypeError, "expected a str, got %.100s", Py_TYPE(client_order_id)->tp_name);
    return nullptr;
  }
  if (PyUnicode_GET_LENGTH(client_order_id) == 0) {
    digest = PyLong_FromLong(0);
  } else {
    text.clear();
    append_int(text, ints[kAccount]);
    text.push_back('|');
    if (!append_text(text, args[kSymbol])) return nullptr;
    text.push_back('|');
    if (!append_text(text, client_order_id)) return nullptr;
    std::uint8_t key[16];
    if (blake2b(key, text.data(), nullptr, sizeof key, text.size(), 0) != 0) {
      PyErr_SetString(PyExc_RuntimeError, "blake2b failed");
      return nullptr;
    }
    std::uint64_t lo = 0, hi = 0;
    for (int i = 7; i >= 0; --i) lo = lo << 8 | key[i];
    for (int i = 15; i >= 8; --i) hi = hi << 8 | key[i];
    PyObject* high = PyLong_FromUnsignedLongLong(hi);
    PyObject* shift = PyLong_FromLong(64);
    PyObject* low = PyLong_FromUnsignedLongLong(lo);
    PyObject* shifted = high && shift ? PyNumber_Lshift(high, shift) : nullptr;
    digest = shifted && low ? PyNumber_Or(shifted, low) : nullptr;
    Py_XDECREF(high);
    Py_XDECREF(shift);
    Py_XDECREF(low);
    Py_XDECREF(shifted);
    if (digest == nullptr) return nullptr;
  }
  PyObject* fingerprint_int = PyLong_FromUnsignedLongLong(request_hash >> 1);
  if (fingerprint_int == nullptr) {
    Py_DECREF(digest);
    return nullptr;
  }
  PyObject* pair = PyTuple_Pack(2, digest, fingerprint_int);
  Py_DECREF(digest);
  Py_DECREF(fingerprint_int);
  return pair;
}

}  // namespace bourse::matching_native
