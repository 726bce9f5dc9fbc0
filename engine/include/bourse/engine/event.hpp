#pragma once

#include <cstdint>
#include <iosfwd>
#include <vector>

#include "bourse/engine/types.hpp"

namespace bourse::engine {

enum class EventKind : std::uint8_t {
  ACCEPTED = 1,
  REJECTED = 2,
  TRADE = 3,
  CANCELLED = 4,
  DONE = 5,  // final state of the order after a submit or a successful cancel/modify
  MODIFIED = 6,  // a modify was accepted: price, quantity = new price and open quantity
};

// One flat POD for every kind, so a batch of events is a plain vector that can
// be copied to Python (or a wire format) in one pass. Fields a kind does not
// use stay zero, which also keeps equality and hashing trivial.
//
// Per kind (order_id and symbol_id are always set):
//   ACCEPTED   -
//   REJECTED   reason (RejectReason)
//   TRADE      order_id == taker_order_id, maker_order_id, maker_account,
//              taker_account, price (maker's), quantity, aggressor_side,
//              maker_remaining, taker_remaining
//   CANCELLED  reason (CancelReason), remaining (quantity cancelled)
//   DONE       status, filled (cumulative), remaining (leaves: > 0 only if resting)
//   MODIFIED   price (new), quantity (new open quantity)
//
// The layout is fixed (96 bytes, no padding) because the packed batch API hands
// these bytes to Python as a numpy structured array (EVENT_DTYPE).
struct Event {
  EventKind kind{};
  std::uint8_t reason = 0;
  OrderStatus status{};
  Side aggressor_side{};
  SymbolId symbol_id = 0;
  OrderId order_id = 0;
  OrderId maker_order_id = 0;
  OrderId taker_order_id = 0;
  AccountId maker_account = 0;
  AccountId taker_account = 0;
  Price price = 0;
  Quantity quantity = 0;
  Quantity maker_remaining = 0;
  Quantity taker_remaining = 0;
  Quantity filled = 0;
  Quantity remaining = 0;

  static Event accepted(OrderId id, SymbolId symbol);
  static Event rejected(OrderId id, SymbolId symbol, RejectReason why);
  static Event cancelled(OrderId id, SymbolId symbol, Quantity remaining, CancelReason why);
  static Event done(OrderId id, SymbolId symbol, OrderStatus status, Quantity filled,
                    Quantity remaining);
  static Event modified(OrderId id, SymbolId symbol, Price price, Quantity quantity);
  static Event trade(SymbolId symbol, OrderId maker_order_id, OrderId taker_order_id,
                     AccountId maker_account, AccountId taker_account, Price price,
                     Quantity quantity, Side aggressor_side, Quantity maker_remaining,
                     Quantity taker_remaining);
};

static_assert(sizeof(Event) == 96, "Event layout is part of the packed API");

bool operator==(const Event& a, const Event& b);
inline bool operator!=(const Event& a, const Event& b) { return !(a == b); }
std::ostream& operator<<(std::ostream& os, const Event& e);

// Running hash over emitted events, so two runs (or the engine and a reference
// model) can be compared with one number. Definition, per event, over these 16
// fields as uint64 (signed values two's complement) in this order:
//   kind, order_id, symbol_id, reason, status, aggressor_side, maker_order_id,
//   taker_order_id, maker_account, taker_account, price, quantity,
//   maker_remaining, taker_remaining, filled, remaining
// (the order of the Python Event tuple; absent enums are 0)
// each word w: h = (h ^ w) * 0x100000001b3; h ^= h >> 32   (mod 2^64),
// starting from kEventHashSeed. (FNV-1a over words instead of bytes, plus a fold
// so high input bits reach the low output bits.)
inline constexpr std::uint64_t kEventHashSeed = 0xcbf29ce484222325ULL;
std::uint64_t hash_event(std::uint64_t h, const Event& e);

// Where the engine reports events, synchronously and in order.
class EventHandler {
 public:
  virtual ~EventHandler() = default;
  virtual void on_event(const Event& e) = 0;
};

// Collects events; the caller clears `events` between commands as it sees fit.
class EventCollector final : public EventHandler {
 public:
  void on_event(const Event& e) override { events.push_back(e); }
  std::vector<Event> events;
};

// Drops events (benchmarks, or when only event_hash() matters).
class NullEventHandler final : public EventHandler {
 public:
  void on_event(const Event&) override {}
};

}  // namespace bourse::engine
