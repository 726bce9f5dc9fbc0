// Python binding of the matching engine. Deliberately thin: plain ints in, lists
// of plain tuples out; the typed API (enums, Event) lives in bourse_engine/.
//
// Each call collects its events in a C++ vector and converts them once at the
// end, so there is no Python callback per event. The GIL is held throughout,
// which is also what serialises access to the (single-threaded) engine.
#include <nanobind/nanobind.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/vector.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string>
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

// One command of execute_packed: 64 bytes, little-endian, no implicit padding.
// Mirrors COMMAND_DTYPE in bourse_engine/packed.py. The first 56 bytes are the layout
// from before stops (COMMAND_DTYPE_V2), the first 48 the one from before icebergs
// (COMMAND_DTYPE_V1); execute_packed still takes both.
struct PackedCommand {
  std::uint8_t op;  // 1 submit, 2 cancel, 3 modify
  std::uint8_t side;
  std::uint8_t order_type;
  std::uint8_t tif;
  std::uint8_t stp;  // 0 means the default, CANCEL_INCOMING
  std::uint8_t post_only;
  std::uint16_t reserved0;
  std::uint32_t symbol_id;
  std::uint32_t reserved1;
  std::uint64_t order_id;
  std::uint64_t account_id;
  std::int64_t price;
  std::int64_t quantity;
  std::int64_t display_quantity;  // submit: 0, or an iceberg's display quantity
  std::int64_t stop_price;        // submit: 0, or a stop's; modify: a waiting stop's new one (0: kept)
};
static_assert(sizeof(PackedCommand) == 64, "COMMAND_DTYPE layout");
constexpr std::size_t kPackedCommandV1 = 48;  // without display_quantity and stop_price
constexpr std::size_t kPackedCommandV2 = 56;  // without stop_price
static_assert(offsetof(PackedCommand, display_quantity) == kPackedCommandV1, "COMMAND_DTYPE_V1 layout");
static_assert(offsetof(PackedCommand, stop_price) == kPackedCommandV2, "COMMAND_DTYPE_V2 layout");
static_assert(offsetof(PackedCommand, symbol_id) == 8 && offsetof(PackedCommand, order_id) == 16,
              "COMMAND_DTYPE layout");
static_assert(offsetof(Event, symbol_id) == 4 && offsetof(Event, order_id) == 8 &&
                  offsetof(Event, remaining) == 88,
              "EVENT_DTYPE layout");

// A read-only view of any contiguous buffer (bytes, bytearray, numpy array).
class Buffer {
 public:
  explicit Buffer(nb::handle obj) {
    if (PyObject_GetBuffer(obj.ptr(), &view_, PyBUF_C_CONTIGUOUS) != 0) throw nb::python_error();
  }
  ~Buffer() { PyBuffer_Release(&view_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  const char* data() const { return static_cast<const char*>(view_.buf); }
  std::size_t size() const { return static_cast<std::size_t>(view_.len); }
  // Bytes per item: a numpy array's itemsize, 1 for bytes.
  std::size_t itemsize() const { return static_cast<std::size_t>(view_.itemsize); }

 private:
  Py_buffer view_;
};

nb::list order_list(const std::vector<OrderEntry>& orders) {
  nb::list out;
  for (const OrderEntry& o : orders) {
    // What the book shows (an iceberg's slice), then an iceberg's display quantity.
    out.append(nb::make_tuple(o.order_id, o.account_id, o.price, o.remaining, o.display_quantity));
  }
  return out;
}

// A waiting stop as StopOrder's fields (bourse_engine.events).
nb::list stop_list(const std::vector<StopOrder>& stops) {
  nb::list out;
  for (const StopOrder& s : stops) {
    out.append(nb::make_tuple(s.order_id, s.account_id, static_cast<int>(s.side), static_cast<int>(s.type),
                              static_cast<int>(s.tif), s.stop_price, s.price, s.quantity, s.display_quantity));
  }
  return out;
}

nb::list level_list(const std::vector<LevelView>& levels) {
  nb::list out;
  for (const LevelView& l : levels) out.append(nb::make_tuple(l.price, l.quantity, l.order_count));
  return out;
}

class PyEngine {
 public:
  PyEngine(std::size_t id_window, std::size_t expected_orders) : engine_(sink_, expected_orders, id_window) {}

  nb::list submit(std::uint64_t order_id, std::uint64_t account_id, std::uint32_t symbol_id,
                  std::int64_t side, std::int64_t order_type, std::int64_t tif,
                  std::int64_t price, std::int64_t quantity, bool post_only, std::int64_t stp,
                  std::int64_t display_quantity, std::int64_t stop_price) {
    sink_.events.clear();
    NewOrder o = new_order(order_id, account_id, symbol_id, side, order_type, tif, price, quantity);
    o.post_only = post_only;
    o.stp = code<SelfTradePrevention>(stp);
    o.display_quantity = display_quantity;
    o.stop_price = stop_price;
    engine_.submit(o);
    return event_list(sink_.events);
  }

  nb::list modify(std::uint64_t order_id, std::uint64_t account_id, std::uint32_t symbol_id,
                  std::int64_t price, std::int64_t quantity, std::int64_t stop_price) {
    sink_.events.clear();
    engine_.modify(ModifyOrder{order_id, account_id, symbol_id, price, quantity, stop_price});
    return event_list(sink_.events);
  }

  // Runs every command in order; returns the events as raw bytes (n * 96, the
  // Event struct = EVENT_DTYPE) -- no Python object per event. Records are 64 bytes
  // (COMMAND_DTYPE), or 56 (COMMAND_DTYPE_V2, no stop price) or 48 (COMMAND_DTYPE_V1,
  // neither display quantity) when the buffer says its items are that size (a numpy
  // array of that dtype).
  nb::bytes execute_packed(nb::handle commands) {
    Buffer buf(commands);
    const std::size_t record = buf.itemsize() == kPackedCommandV1   ? kPackedCommandV1
                               : buf.itemsize() == kPackedCommandV2 ? kPackedCommandV2
                                                                    : sizeof(PackedCommand);
    if (buf.size() % record != 0) {
      throw nb::value_error(("execute_packed: buffer size is not a multiple of " + std::to_string(record)).c_str());
    }
    const std::size_t n = buf.size() / record;
    // Refuse the whole batch up front rather than stopping half way.
    for (std::size_t i = 0; i < n; ++i) {
      const auto op = static_cast<std::uint8_t>(buf.data()[i * record]);
      if (op < 1 || op > 3) {
        throw nb::value_error(("execute_packed: bad op in command " + std::to_string(i)).c_str());
      }
    }
    // As one Engine::execute batch, which fetches the next commands' orders and books
    // while one runs.
    std::vector<Engine::Command> batch(n);
    for (std::size_t i = 0; i < n; ++i) {
      PackedCommand c{};  // a shorter record leaves the fields it lacks 0
      std::memcpy(&c, buf.data() + i * record, record);  // the buffer need not be aligned
      Engine::Command& command = batch[i];
      command.op = static_cast<Engine::Command::Op>(c.op);
      if (c.op == 1) {
        command.order = new_order(c.order_id, c.account_id, c.symbol_id, c.side, c.order_type, c.tif,
                                  c.price, c.quantity);
        command.order.post_only = c.post_only != 0;
        command.order.stp = c.stp == 0 ? SelfTradePrevention::CANCEL_INCOMING
                                       : static_cast<SelfTradePrevention>(c.stp);
        command.order.display_quantity = c.display_quantity;
        command.order.stop_price = c.stop_price;
      } else {
        command.order.order_id = c.order_id;
        command.order.account_id = c.account_id;
        command.order.symbol_id = c.symbol_id;
        command.order.price = c.price;
        command.order.quantity = c.quantity;
        command.order.stop_price = c.stop_price;
      }
    }
    sink_.events.clear();
    engine_.execute(batch.data(), n);
    return nb::bytes(reinterpret_cast<const char*>(sink_.events.data()),
                     sink_.events.size() * sizeof(Event));
  }

  void set_instrument(std::uint32_t symbol_id, std::int64_t tick_size, std::int64_t lot_size,
                      std::int64_t min_quantity, std::int64_t max_quantity,
                      std::int64_t band_percent, std::int64_t reference_price) {
    Instrument i{tick_size, lot_size, min_quantity, max_quantity, band_percent, reference_price};
    if (!engine_.set_instrument(symbol_id, i)) {
      throw nb::value_error("set_instrument: need 1 <= tick_size <= MAX_PRICE, 1 <= lot_size, "
                            "1 <= min_quantity <= max_quantity <= MAX_QUANTITY, "
                            "0 <= band_percent <= 1000, 0 <= reference_price <= MAX_PRICE");
    }
  }

  void set_reference_price(std::uint32_t symbol_id, std::int64_t price) {
    if (!engine_.set_reference_price(symbol_id, price)) {
      throw nb::value_error("set_reference_price: price must be in [0, MAX_PRICE]");
    }
  }

  void set_trading_status(std::uint32_t symbol_id, std::int64_t status) {
    if (!engine_.set_trading_status(symbol_id, code<TradingStatus>(status))) {
      throw nb::value_error("set_trading_status: status must be 1 (TRADING) or 2 (HALTED)");
    }
  }

  int trading_status(std::uint32_t symbol_id) const {
    return static_cast<int>(engine_.trading_status(symbol_id));
  }

  // None: the account's orders on every symbol.
  nb::list cancel_all(std::uint64_t account_id, std::optional<std::uint32_t> symbol_id) {
    sink_.events.clear();
    engine_.cancel_all(account_id, symbol_id);
    return event_list(sink_.events);
  }

  nb::tuple instrument(std::uint32_t symbol_id) const {
    const Instrument i = engine_.instrument(symbol_id);
    return nb::make_tuple(i.tick_size, i.lot_size, i.min_quantity, i.max_quantity,
                          i.band_percent, i.reference_price);
  }

  nb::tuple l3(std::uint32_t symbol_id) const {
    std::vector<OrderEntry> bids, asks;
    engine_.l3(symbol_id, bids, asks);
    return nb::make_tuple(order_list(bids), order_list(asks));
  }

  nb::tuple stops(std::uint32_t symbol_id) const {
    std::vector<StopOrder> buys, sells;
    engine_.stops(symbol_id, buys, sells);
    return nb::make_tuple(stop_list(buys), stop_list(sells));
  }

  std::int64_t last_trade_price(std::uint32_t symbol_id) const { return engine_.last_trade_price(symbol_id); }

  nb::bytes snapshot() const {
    const std::string s = engine_.snapshot();
    return nb::bytes(s.data(), s.size());
  }

  void restore(nb::handle data) {
    Buffer buf(data);
    try {
      engine_.restore(std::string_view(buf.data(), buf.size()));
    } catch (const std::invalid_argument& e) {
      throw nb::value_error(e.what());
    }
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
                        const std::vector<std::int64_t>& quantity,
                        const std::optional<std::vector<std::int64_t>>& display_quantity) {
    const std::size_t n = order_id.size();
    if (account_id.size() != n || symbol_id.size() != n || side.size() != n ||
        order_type.size() != n || tif.size() != n || price.size() != n ||
        quantity.size() != n || (display_quantity && display_quantity->size() != n)) {
      throw nb::value_error("submit_batch: all columns must have the same length");
    }
    sink_.events.clear();
    for (std::size_t i = 0; i < n; ++i) {
      NewOrder o = new_order(order_id[i], account_id[i], symbol_id[i], side[i], order_type[i], tif[i],
                             price[i], quantity[i]);
      if (display_quantity) o.display_quantity = (*display_quantity)[i];
      engine_.submit(o);
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
                          o->filled, o->account_id, o->visible, o->display_quantity);
  }

  std::uint64_t event_hash() const { return engine_.event_hash(); }
  std::size_t live_orders() const { return engine_.live_orders(); }
  std::size_t known_ids() const { return engine_.known_ids(); }
  std::size_t symbol_count() const { return engine_.symbol_count(); }

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
  Engine engine_;
};

}  // namespace

NB_MODULE(_bourse_engine, m) {
  m.doc() = "bourse matching engine (raw binding; use the bourse_engine package)";
  m.attr("MAX_PRICE") = kMaxPrice;
  m.attr("MAX_QUANTITY") = kMaxQuantity;
  m.attr("EVENT_HASH_SEED") = kEventHashSeed;
  m.attr("MAX_BAND_PERCENT") = kMaxBandPercent;
  m.attr("DEFAULT_ID_WINDOW") = OrderStore::kDefaultIdWindow;

  nb::class_<PyEngine>(m, "Engine")
      .def(nb::init<std::size_t, std::size_t>(), nb::arg("id_window") = OrderStore::kDefaultIdWindow,
           nb::arg("expected_orders") = 1024)
      .def("submit", &PyEngine::submit, nb::arg("order_id"), nb::arg("account_id"),
           nb::arg("symbol_id"), nb::arg("side"), nb::arg("order_type"), nb::arg("tif"),
           nb::arg("price"), nb::arg("quantity"), nb::arg("post_only") = false,
           nb::arg("stp") = 1, nb::arg("display_quantity") = 0, nb::arg("stop_price") = 0)
      .def("modify", &PyEngine::modify, nb::arg("order_id"), nb::arg("account_id"),
           nb::arg("symbol_id"), nb::arg("price"), nb::arg("quantity"), nb::arg("stop_price") = 0)
      .def("stops", &PyEngine::stops, nb::arg("symbol_id"))
      .def("last_trade_price", &PyEngine::last_trade_price, nb::arg("symbol_id"))
      .def("execute_packed", &PyEngine::execute_packed, nb::arg("commands"))
      .def("set_instrument", &PyEngine::set_instrument, nb::arg("symbol_id"),
           nb::arg("tick_size"), nb::arg("lot_size"), nb::arg("min_quantity"),
           nb::arg("max_quantity"), nb::arg("band_percent"), nb::arg("reference_price"))
      .def("set_reference_price", &PyEngine::set_reference_price, nb::arg("symbol_id"),
           nb::arg("price"))
      .def("instrument", &PyEngine::instrument, nb::arg("symbol_id"))
      .def("set_trading_status", &PyEngine::set_trading_status, nb::arg("symbol_id"),
           nb::arg("status"))
      .def("trading_status", &PyEngine::trading_status, nb::arg("symbol_id"))
      .def("cancel_all", &PyEngine::cancel_all, nb::arg("account_id"),
           nb::arg("symbol_id").none() = nb::none())
      .def("l3", &PyEngine::l3, nb::arg("symbol_id"))
      .def("snapshot", &PyEngine::snapshot)
      .def("restore", &PyEngine::restore, nb::arg("data"))
      .def("symbol_count", &PyEngine::symbol_count)
      .def("cancel", &PyEngine::cancel, nb::arg("order_id"), nb::arg("account_id"),
           nb::arg("symbol_id"))
      .def("submit_batch", &PyEngine::submit_batch, nb::arg("order_id"),
           nb::arg("account_id"), nb::arg("symbol_id"), nb::arg("side"),
           nb::arg("order_type"), nb::arg("tif"), nb::arg("price"), nb::arg("quantity"),
           nb::arg("display_quantity").none() = nb::none())
      .def("depth", &PyEngine::depth, nb::arg("symbol_id"), nb::arg("levels"))
      .def("order", &PyEngine::order, nb::arg("order_id"))
      .def("event_hash", &PyEngine::event_hash)
      .def("live_orders", &PyEngine::live_orders)
      .def("known_ids", &PyEngine::known_ids);
}
