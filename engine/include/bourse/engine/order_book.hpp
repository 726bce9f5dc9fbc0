#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "bourse/engine/event.hpp"
#include "bourse/engine/order_store.hpp"
#include "bourse/engine/types.hpp"

namespace bourse::engine {

struct LevelView {
  Price price;
  Quantity quantity;  // sum of remaining quantity (saturates at INT64_MAX)
  std::uint32_t order_count;
};

// The incoming (aggressing) side of a match.
struct Taker {
  OrderId order_id;
  AccountId account_id;
  Side side;
  Price limit;  // worst acceptable price; see any_price()
  Quantity remaining;
  Quantity filled;

  // Limit that crosses every resting price (for market orders).
  static Price any_price(Side side);
};

// One symbol's book: two sides of price levels, each level a FIFO of orders
// whose nodes live in the shared OrderStore.
//
// Levels are kept in a vector sorted so that the *best* level is at the back:
// matching consumes and erases levels at the back (O(1)), and most inserts and
// cancels happen near the top of book, i.e. near the back, so the memmove on
// insert/erase stays short.
class OrderBook {
 public:
  OrderBook(SymbolId symbol, OrderStore& store);

  SymbolId symbol() const { return symbol_; }

  // How much of `wanted` the opposite side could fill right now at `limit` or
  // better (never more than `wanted`). Used for the FOK all-or-nothing check.
  Quantity fillable(Side taker_side, Price limit, Quantity wanted) const;

  // Trades the taker against the opposite side in price-time order while it
  // crosses, emitting one TRADE per fill; filled makers are retired.
  void match(Taker& taker, EventHandler& out);

  // Appends a resting order (already in the store) to the tail of its level.
  void rest(OrderIndex idx);

  // Unlinks a resting order from its level (the caller retires it).
  void remove(OrderIndex idx);

  // Up to `max_levels` levels of one side, best first, appended to `out`.
  void depth(Side side, std::size_t max_levels, std::vector<LevelView>& out) const;

  std::size_t level_count(Side side) const { return levels(side).size(); }
  bool empty() const { return bids_.empty() && asks_.empty(); }

 private:
  // GCC/Clang extension; level totals are sums over many orders and must not wrap.
  __extension__ typedef __int128 Total;

  struct Level {
    Price price;
    OrderIndex head;  // oldest order: matched first
    OrderIndex tail;  // newest order
    std::uint32_t count;
    Total total;
  };

  std::vector<Level>& levels(Side side) { return side == Side::BUY ? bids_ : asks_; }
  const std::vector<Level>& levels(Side side) const {
    return side == Side::BUY ? bids_ : asks_;
  }

  // Position of `price` in the side's vector: either its level or where it
  // would be inserted.
  std::size_t position(Side side, Price price) const;

  void unlink(Level& level, OrderIndex idx);

  SymbolId symbol_;
  OrderStore& store_;
  std::vector<Level> bids_;  // ascending price: best (highest) at back
  std::vector<Level> asks_;  // descending price: best (lowest) at back
};

}  // namespace bourse::engine
