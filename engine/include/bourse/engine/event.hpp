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
  TRIGGERED = 7,  // a waiting stop enters: price = its stop price, quantity = its quantity
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
//   TRIGGERED  price (the stop price), quantity (the stop's quantity)
// Every remaining is the order's leaves: an iceberg's hidden quantity is included
// (maker_remaining too). A refresh of an iceberg's slice emits no event.
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
  static Event triggered(OrderId id, SymbolId symbol, Price stop_price, Quantity quantity);
  static Event trade(SymbolId symbol, OrderId maker_order_id, OrderId taker_order_id,
                     AccountId maker_account, AccountId taker_account, Price price,
                     Quantity quantity, Side aggressor_side, Quantity maker_remaining,
                     Quantity taker_remaining);

 private:
  // What every kind sets: the kind, its order and its symbol; the rest stays zero.
  static Event of(EventKind kind, OrderId id, SymbolId symbol);
};

static_assert(sizeof(Event) == 96, "Event layout is part of the packed API");

// Inline, so that the emitter hashing an event sees its fields where they are
// computed: built out of line, the event came back through memory, and the hash's
// first word, one load over several narrow stores, waited for them to commit
// (store forwarding fails), a tenth of the insert benchmark.
inline Event Event::of(EventKind kind, OrderId id, SymbolId symbol) {
  Event e;
  e.kind = kind;
  e.order_id = id;
  e.symbol_id = symbol;
  return e;
}

inline Event Event::accepted(OrderId id, SymbolId symbol) {
  return of(EventKind::ACCEPTED, id, symbol);
}

inline Event Event::rejected(OrderId id, SymbolId symbol, RejectReason why) {
  Event e = of(EventKind::REJECTED, id, symbol);
  e.reason = static_cast<std::uint8_t>(why);
  return e;
}

inline Event Event::cancelled(OrderId id, SymbolId symbol, Quantity remaining, CancelReason why) {
  Event e = of(EventKind::CANCELLED, id, symbol);
  e.reason = static_cast<std::uint8_t>(why);
  e.remaining = remaining;
  return e;
}

inline Event Event::done(OrderId id, SymbolId symbol, OrderStatus status, Quantity filled,
                         Quantity remaining) {
  Event e = of(EventKind::DONE, id, symbol);
  e.status = status;
  e.filled = filled;
  e.remaining = remaining;
  return e;
}

inline Event Event::modified(OrderId id, SymbolId symbol, Price price, Quantity quantity) {
  Event e = of(EventKind::MODIFIED, id, symbol);
  e.price = price;
  e.quantity = quantity;
  return e;
}

inline Event Event::triggered(OrderId id, SymbolId symbol, Price stop_price, Quantity quantity) {
  Event e = of(EventKind::TRIGGERED, id, symbol);
  e.price = stop_price;
  e.quantity = quantity;
  return e;
}

inline Event Event::trade(SymbolId symbol, OrderId maker_order_id, OrderId taker_order_id,
                          AccountId maker_account, AccountId taker_account, Price price,
                          Quantity quantity, Side aggressor_side, Quantity maker_remaining,
                          Quantity taker_remaining) {
  Event e = of(EventKind::TRADE, taker_order_id, symbol);
  e.maker_order_id = maker_order_id;
  e.taker_order_id = taker_order_id;
  e.maker_account = maker_account;
  e.taker_account = taker_account;
  e.price = price;
  e.quantity = quantity;
  e.aggressor_side = aggressor_side;
  e.maker_remaining = maker_remaining;
  e.taker_remaining = taker_remaining;
  return e;
}

bool operator==(const Event& a, const Event& b);
inline bool operator!=(const Event& a, const Event& b) { return !(a == b); }
std::ostream& operator<<(std::ostream& os, const Event& e);

// Running hash over emitted events, so two runs (or the engine and a reference
// model) can be compared with one number. Definition, per event, over 12 words as
// uint64 (signed values two's complement), the event's own layout:
//   kind | reason << 8 | status << 16 | aggressor_side << 24 | symbol_id << 32,
//   order_id, maker_order_id, taker_order_id, maker_account, taker_account, price,
//   quantity, maker_remaining, taker_remaining, filled, remaining
// s = sum of w[i] * kEventHashWeights[i], then h = fmix64(h ^ s)   (mod 2^64),
// starting from kEventHashSeed; fmix64 is MurmurHash3's 64-bit finalizer. The
// weighted sum does not depend on h, so the CPU computes it beside the engine's other
// work and only the finalizer chains one event to the next: a chain of 16 dependent
// multiplies per event (the earlier definition) was a fifth of the engine's time.
// The weights are odd, so two events that differ in one word never hash alike.
inline constexpr std::uint64_t kEventHashSeed = 0xcbf29ce484222325ULL;
inline constexpr std::uint64_t kEventHashWeights[12] = {
    0x162514BFDC076D73ULL, 0xC82B4A212FDCCE5FULL, 0xB96F08A1B85CC939ULL, 0xAC8CD4DE55C2FC8BULL,
    0x4A6B90A6EEB7FF95ULL, 0x2A90F3FAD65CBAAFULL, 0x8C4FAA62A8682B59ULL, 0x1EE85282D9F35647ULL,
    0x6F6A36BDD8900C75ULL, 0x9DCE50009F4FC00FULL, 0xC04FEE4DF5901E2FULL, 0xA4CA62C95583A44BULL};

inline std::uint64_t hash_event(std::uint64_t h, const Event& e) {
  const std::uint64_t words[12] = {
      static_cast<std::uint64_t>(e.kind) | static_cast<std::uint64_t>(e.reason) << 8 |
          static_cast<std::uint64_t>(e.status) << 16 |
          static_cast<std::uint64_t>(e.aggressor_side) << 24 |
          static_cast<std::uint64_t>(e.symbol_id) << 32,
      e.order_id,
      e.maker_order_id,
      e.taker_order_id,
      e.maker_account,
      e.taker_account,
      static_cast<std::uint64_t>(e.price),
      static_cast<std::uint64_t>(e.quantity),
      static_cast<std::uint64_t>(e.maker_remaining),
      static_cast<std::uint64_t>(e.taker_remaining),
      static_cast<std::uint64_t>(e.filled),
      static_cast<std::uint64_t>(e.remaining),
  };
  // Four sums, so that the additions are four short chains rather than one long one.
  std::uint64_t sums[4] = {0, 0, 0, 0};
  for (int i = 0; i < 12; i += 4) {
    sums[0] += words[i] * kEventHashWeights[i];
    sums[1] += words[i + 1] * kEventHashWeights[i + 1];
    sums[2] += words[i + 2] * kEventHashWeights[i + 2];
    sums[3] += words[i + 3] * kEventHashWeights[i + 3];
  }
  std::uint64_t k = h ^ ((sums[0] + sums[1]) + (sums[2] + sums[3]));
  k ^= k >> 33;
  k *= 0xff51afd7ed558ccdULL;
  k ^= k >> 33;
  k *= 0xc4ceb9fe1a85ec53ULL;
  k ^= k >> 33;
  return k;
}

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
