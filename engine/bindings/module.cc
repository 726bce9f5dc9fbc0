// Python binding of the matching engine. Deliberately thin: plain ints in, lists
// of plain tuples out; the typed API (enums, Event) lives in bourse_engine/.
//
// Each call collects its events in a C++ vector and converts them once at the
// end, so there is no Python callback per event. The GIL is held throughout,
// which is also what serialises access to the (single-threaded) engine.
#include <nanobind/nanobind.h>
#include <nanobind/stl/vector.h>

#include <cstdint>
#include <vector>

#include "bourse/engine/engine.hpp"

namespace nb = nanobind;
using namespace bourse::engine;

namespace {

// Out-of-range codes become 0, which validation rejects, rather than being
// truncated (257 must not become 1 == BUY).
template <class E>
E code(std::int64_t v) {
  return static_cast<E>(v >= 0 && v <= 255 ? v : 0);
}

nb::object steal_checked(PyObject* o) {
  if (o == nullptr) throw nb::python_error();
  return nb::steal(o);
}

// Field order is the Event NamedTuple's in bourse_engine/events.py.
nb::object event_tuple(const Event& e) {
  nb::object t = steal_checked(PyTuple_New(16));
  PyObject* items[16] = {
      PyLong_FromLong(static_cast<long>(e.kind)),
      PyLong_FromUnsignedLongLong(e.order_id),
      PyLong_FromUnsignedLong(e.symbol_id),
      PyLong_FromLong(e.reason),
      PyLong_FromLong(static_cast<long>(e.status)),
      PyLong_FromLong(static_cast<long>(e.aggressor_side)),
      PyLong_FromUnsignedLongLong(e.maker_order_id),
      PyLong_FromUnsignedLongLong(e.taker_order_id),
      PyLong_FromUnsignedLongLong(e.maker_account),
      PyLong_FromUnsignedLongLong(e.taker_account),
      PyLong_FromLongLong(e.price),
      PyLong_FromLongLong(e.quantity),
      PyLong_FromLongLong(e.maker_remaining),
      PyLong_FromLongLong(e.taker_remaining),
      PyLong_FromLongLong(e.filled),
      PyLong_FromLongLong(e.remaining),
  };
  bool ok = true;
  for (int i = 0; i < 16; ++i) {
    ok = ok && items[i] != nullptr;
    PyTuple_SET_ITEM(t.ptr(), i, items[i]);  // steals; a null slot is safe to free
  }
  if (!ok) throw nb::python_error();
  return t;
}

nb::list event_list(const std::vector<Event>& events) {
  nb::object out = steal_checked(PyList_New(static_cast<Py_ssize_t>(events.size())));
  for (std::size_t i = 0; i < events.size(); ++i) {
    // A throw leaves null slots, which list deallocation tolerates.
    PyList_SET_ITEM(out.ptr(), static_cast<Py_ssize_t>(i), event_tuple(events[i]).release().ptr());
  }
  return nb::borrow<nb::list>(out);
}

nb::list level_list(const std::vector<LevelView>& levels) {
  nb::list out;
  for (const LevelView& l : levels) out.append(nb::make_tuple(l.price, l.quantity, l.order_count));
  return out;
}

class PyEngine {
 public:
  nb::list submit(std::uint64_t order_id, std::uint64_t account_id, std::uint32_t symbol_id,
                  std::int64_t side, std::int64_t order_type, std::int64_t tif,
                  std::int64_t price, std::int64_t quantity) {
    sink_.events.clear();
    engine_.submit(new_order(order_id, account_id, symbol_id, side, order_type, tif, price,
                             quantity));
    return event_list(sink_.events);
  }

  nb::list cancel(std::uint64_t order_id, std::uint64_t account_id, std::uint32_t symbol_id) {
    sink_.events.clear();
    engine_.cancel(CancelOrder{order_id, account_id, symbol_id});
    return event_list(sink_.events);
  }

  // All events of all orders, in order; each order's events end with its DONE.
  nb::list submit_batch(const std::vector<std::uint64_t>& order_id,
                        const std::vector<std::uint64_t>& account_id,
                        const std::vector<std::uint32_t>& symbol_id,
                        const std::vector<std::int64_t>& side,
                        const std::vector<std::int64_t>& order_type,
                        const std::vector<std::int64_t>& tif,
                        const std::vector<std::int64_t>& price,
                        const std::vector<std::int64_t>& quantity) {
    const std::size_t n = order_id.size();
    if (account_id.size() != n || symbol_id.size() != n || side.size() != n ||
        order_type.size() != n || tif.size() != n || price.size() != n ||
        quantity.size() != n) {
      throw nb::value_error("submit_batch: all columns must have the same length");
    }
    sink_.events.clear();
    for (std::size_t i = 0; i < n; ++i) {
      engine_.submit(new_order(order_id[i], account_id[i], symbol_id[i], side[i],
                               order_type[i], tif[i], price[i], quantity[i]));
    }
    return event_list(sink_.events);
  }

  nb::tuple depth(std::uint32_t symbol_id, std::size_t levels) const {
    std::vector<LevelView> bids, asks;
    engine_.depth(symbol_id, levels, bids, asks);
    return nb::make_tuple(level_list(bids), level_list(asks));
  }

  nb::object order(std::uint64_t order_id) const {
    std::optional<OrderView> o = engine_.order(order_id);
    if (!o) return nb::none();
    return nb::make_tuple(o->symbol_id, static_cast<int>(o->side), o->price, o->remaining,
                          o->filled, o->account_id);
  }

  std::uint64_t event_hash() const { return engine_.event_hash(); }
  std::size_t live_orders() const { return engine_.live_orders(); }

 private:
  static NewOrder new_order(std::uint64_t order_id, std::uint64_t account_id,
                            std::uint32_t symbol_id, std::int64_t side,
                            std::int64_t order_type, std::int64_t tif, std::int64_t price,
                            std::int64_t quantity) {
    return NewOrder{order_id,         account_id,           symbol_id,
                    code<Side>(side), code<OrderType>(order_type), code<TimeInForce>(tif),
                    price,            quantity};
  }

  EventCollector sink_;
  Engine engine_{sink_};
};

}  // namespace

NB_MODULE(_bourse_engine, m) {
  m.doc() = "bourse matching engine (raw binding; use the bourse_engine package)";
  m.attr("MAX_PRICE") = kMaxPrice;
  m.attr("MAX_QUANTITY") = kMaxQuantity;
  m.attr("EVENT_HASH_SEED") = kEventHashSeed;

  nb::class_<PyEngine>(m, "Engine")
      .def(nb::init<>())
      .def("submit", &PyEngine::submit, nb::arg("order_id"), nb::arg("account_id"),
           nb::arg("symbol_id"), nb::arg("side"), nb::arg("order_type"), nb::arg("tif"),
           nb::arg("price"), nb::arg("quantity"))
      .def("cancel", &PyEngine::cancel, nb::arg("order_id"), nb::arg("account_id"),
           nb::arg("symbol_id"))
      .def("submit_batch", &PyEngine::submit_batch, nb::arg("order_id"),
           nb::arg("account_id"), nb::arg("symbol_id"), nb::arg("side"),
           nb::arg("order_type"), nb::arg("tif"), nb::arg("price"), nb::arg("quantity"))
      .def("depth", &PyEngine::depth, nb::arg("symbol_id"), nb::arg("levels"))
      .def("order", &PyEngine::order, nb::arg("order_id"))
      .def("event_hash", &PyEngine::event_hash)
      .def("live_orders", &PyEngine::live_orders);
}
