#pragma once

#include <cstdint>
#include <vector>

#include "bourse/engine/order_id_map.hpp"
#include "bourse/engine/types.hpp"

namespace bourse::engine {

using OrderIndex = std::uint32_t;
inline constexpr OrderIndex kNoOrder = 0xFFFFFFFFu;

// A resting order. Nodes live in one pool and are linked by index (not pointer)
// into their price level's FIFO, so the pool can grow without fix-ups.
struct Order {
  OrderId order_id;
  AccountId account_id;
  Price price;
  Quantity remaining;
  Quantity filled;
  OrderIndex prev;  // towards the head (older) of the level's FIFO
  OrderIndex next;  // towards the tail (newer); also links the free list
  SymbolId symbol_id;
  Side side;
  SelfTradePrevention stp;  // used again when a modify re-enters the order
  bool post_only;
};

// Owns every resting order of every book plus the index of known order ids.
// An id maps to its pool index while the order rests, and to kRetired once it
// is accepted but not resting (done or never rested). Done ids are kept for a
// bounded window, not forever, so memory follows the book, not the history: an
// accepted id stays known while its order works and until `id_window` more
// orders are done after it (a ring of the latest done ids).
class OrderStore {
 public:
  static constexpr std::uint32_t kRetired = OrderIdMap::kMaxValue;
  static constexpr std::size_t kDefaultIdWindow = std::size_t{1} << 17;

  explicit OrderStore(std::size_t expected_orders = 1024,
                      std::size_t id_window = kDefaultIdWindow)
      : ids_(expected_orders), id_window_(id_window ? id_window : 1) {
    nodes_.reserve(expected_orders);
  }

  bool known(OrderId id) const { return ids_.find(id) != OrderIdMap::kAbsent; }

  // Index of the live (resting) order with this id, or kNoOrder.
  OrderIndex find_live(OrderId id) const {
    std::uint32_t v = ids_.find(id);
    return (v == OrderIdMap::kAbsent || v == kRetired) ? kNoOrder : v;
  }

  // Records an accepted id that is not (yet) resting.
  void mark_known(OrderId id) { ids_.put(id, kRetired); }

  // An accepted order ended without resting (filled, killed, rejected remainder):
  // its id joins the window of done ids.
  void finished(OrderId id) { remember(id); }

  // Copies `order` into the pool and indexes it by id; links are left unset.
  // Invalidates references to other nodes (the pool may grow).
  OrderIndex add(const Order& order);

  // The order is done: frees its node and marks its id retired (in the window).
  void retire(OrderIndex idx);

  // Frees the node of an order that re-enters at once under its id (a modify's
  // cancel-replace): it is not done, so its id does not join the window.
  void release(OrderIndex idx);

  Order& at(OrderIndex idx) { return nodes_[idx]; }
  const Order& at(OrderIndex idx) const { return nodes_[idx]; }

  std::size_t live() const { return live_; }
  std::size_t known_ids() const { return ids_.size(); }
  std::size_t id_window() const { return id_window_; }

 private:
  // Appends a done id to the ring; the done id it overwrites is forgotten.
  void remember(OrderId id);

  std::vector<Order, HugePageAllocator<Order>> nodes_;
  OrderIndex free_head_ = kNoOrder;
  std::size_t live_ = 0;
  OrderIdMap ids_;
  std::size_t id_window_;
  std::vector<OrderId> recent_;  // grows to id_window_, then a ring
  std::size_t recent_next_ = 0;
};

}  // namespace bourse::engine
