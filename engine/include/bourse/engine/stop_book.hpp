#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <unordered_map>
#include <utility>
#include <vector>

#include "bourse/engine/order_store.hpp"
#include "bourse/engine/types.hpp"

namespace bourse::engine {

// A stop or stop-limit order waiting for its trigger, off the book. Its id is taken
// (a node reserved in the OrderStore, neither resting nor done) so that duplicates,
// and its node when it enters, need nothing of their own.
struct StopOrder {
  OrderId order_id;
  AccountId account_id;
  Price stop_price;
  Price price;  // the limit it enters with; 0 for a stop (market)
  Quantity quantity;
  Quantity display_quantity;
  OrderIndex node;
  Side side;
  OrderType type;
  TimeInForce tif;
  SelfTradePrevention stp;
};

// One symbol's waiting stops, per side in entry order: buy stops lowest stop price
// first, sell stops highest first (the order a moving price reaches them), arrival
// order within a price. Only symbols that have stops have one (OrderBook keeps a
// pointer), so books without stops pay one test after a trade.
class StopBook {
 public:
  // Appends a stop behind the others at its stop price.
  void add(const StopOrder& stop);
  // The waiting stop with this id, or nullptr.
  StopOrder* find(OrderId id);
  // Removes a waiting stop (it must be there) and returns it.
  StopOrder take(OrderId id);
  // Moves the stops that trades from `first` to `last` by an order on `side` trigger to
  // the back of `out`, in entry order (engine/README.md): for a buy, buy stops at or
  // below `first`, then sell stops at or above `first`, then buy stops up to `last`;
  // for a sell the mirror image.
  void trigger(Side side, Price first, Price last, std::deque<StopOrder>& out);

  // Every waiting stop of one side in entry order.
  void list(Side side, std::vector<StopOrder>& out) const;
  // The waiting stops of `account` (both sides, any order).
  void of_account(AccountId account, std::vector<StopOrder>& out) const;
  std::size_t size() const { return index_.size(); }
  bool empty() const { return index_.empty(); }

 private:
  // (stop price as the side sorts it, arrival): buys ascend by stop price, sells by its
  // negation (descend by stop price), so each side's next to trigger is its front.
  using Key = std::pair<Price, std::uint64_t>;
  static Key key(Side side, Price stop, std::uint64_t arrival) {
    return {side == Side::BUY ? stop : -stop, arrival};
  }
  std::map<Key, StopOrder>& side_map(Side side) { return side == Side::BUY ? buys_ : sells_; }
  // Moves the front stops of `side` while `reached(stop price)` to `out`.
  template <class Reached>
  void pop_while(Side side, Reached reached, std::deque<StopOrder>& out);

  std::map<Key, StopOrder> buys_;
  std::map<Key, StopOrder> sells_;
  std::unordered_map<OrderId, Key> index_;  // a waiting stop's id -> its key (side: stop's own)
  std::uint64_t arrivals_ = 0;
};

}  // namespace bourse::engine
