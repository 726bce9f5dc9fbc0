// Text the matching process writes per value, many times a batch: a column of ints as a
// PostgreSQL array literal (direct_writes.py), a time as ISO 8601 (market_data.py). In
// Python, str() per int and a datetime per trade were most of those functions' cost.
// Tests check both against the Python forms they replace.
#include <charconv>
#include <cstdint>
#include <string>

#include "native.hpp"

namespace bourse::matching_native {
namespace {

// Days since 1970-01-01 as a proleptic Gregorian (year, month, day): Howard Hinnant's
// civil_from_days (public domain, http://howardhinnant.github.io/date_algorithms.html).
void civil_from_days(std::int64_t z, std::int64_t* year, unsigned* month, unsigned* day) {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  *day = doy - (153 * mp + 2) / 5 + 1;
  *month = mp < 10 ? mp + 3 : mp - 9;
  *year = static_cast<std::int64_t>(yoe) + era * 400 + (*month <= 2);
}

void two_digits(char* out, unsigned v) {
  out[0] = static_cast<char>('0' + v / 10);
  out[1] = static_cast<char>('0' + v % 10);
}

}  // namespace

PyObject* int_array_literal(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 1 || !PyList_Check(args[0])) {
    PyErr_SetString(PyExc_TypeError, "int_array_literal(list)");
    return nullptr;
  }
  PyObject* column = args[0];
  Py_ssize_t count = PyList_GET_SIZE(column);
  std::string text;
  text.reserve(2 + static_cast<std::size_t>(count) * 12);
  text.push_back('{');
  for (Py_ssize_t i = 0; i < count; ++i) {
    PyObject* item = PyList_GET_ITEM(column, i);
    if (!PyLong_CheckExact(item)) Py_RETURN_NONE;  // not all ints (bool, None...): the caller's general form
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(item, &overflow);
    if (overflow != 0) Py_RETURN_NONE;
    if (v == -1 && PyErr_Occurred()) return nullptr;
    if (i > 0) text.push_back(',');
    char digits[24];
    text.append(digits, std::to_chars(digits, digits + sizeof digits, v).ptr);
  }
  text.push_back('}');
  return PyUnicode_DecodeASCII(text.data(), static_cast<Py_ssize_t>(text.size()), nullptr);
}

PyObject* iso_us(PyObject*, PyObject* const* args, Py_ssize_t nargs) {
  if (nargs != 1) {
    PyErr_SetString(PyExc_TypeError, "iso_us(microseconds)");
    return nullptr;
  }
  std::int64_t us;
  if (!as_int64(args[0], &us)) return nullptr;
  constexpr std::int64_t kDay = 86'400'000'000;
  std::int64_t days = us / kDay, rest = us % kDay;
  if (rest < 0) {
    rest += kDay;
    days -= 1;
  }
  std::int64_t year;
  unsigned month, day;
  civil_from_days(days, &year, &month, &day);
  if (year < 1 || year > 9999) {  // what datetime can hold
    PyErr_SetString(PyExc_OverflowError, "date value out of range");
    return nullptr;
  }
  const unsigned seconds_of_day = static_cast<unsigned>(rest / 1'000'000);
  const unsigned micros = static_cast<unsigned>(rest % 1'000'000);
  // datetime.isoformat() of an aware UTC time: the fraction only when it is not zero.
  char out[40] = "0000-00-00T00:00:00";
  for (int i = 3, y = static_cast<int>(year); i >= 0; --i, y /= 10) out[i] = static_cast<char>('0' + y % 10);
  two_digits(out + 5, month);
  two_digits(out + 8, day);
  two_digits(out + 11, seconds_of_day / 3600);
  two_digits(out + 14, seconds_of_day / 60 % 60);
  two_digits(out + 17, seconds_of_day % 60);
  std::size_t size = 19;
  if (micros != 0) {
    out[size++] = '.';
    for (int i = 5, m = static_cast<int>(micros); i >= 0; --i, m /= 10) out[size + i] = static_cast<char>('0' + m % 10);
    size += 6;
  }
  for (char c : std::string("+00:00")) out[size++] = c;
  return PyUnicode_DecodeASCII(out, static_cast<Py_ssize_t>(size), nullptr);
}

}  // namespace bourse::matching_native
