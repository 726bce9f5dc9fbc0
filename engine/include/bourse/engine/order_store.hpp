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
//
// An iceberg shows only a slice of its open quantity: `remaining` is all of it,
// `hidden` the part not shown, so the book shows remaining - hidden (its level's
// total counts that). An ordinary order has hidden == 0 and is shown whole. The
// iceberg's display quantity (the size of a fresh slice) is kept beside the pool
// (OrderStore::display), read only when a slice is refreshed, the order re-enters
// (modify) or is listed: the node stays 64 bytes, one cache line.
struct Order {
  OrderId order_id;
  AccountId account_id;
  Price price;
  Quantity remaining;  // open quantity (leaves): shown + hidden
  Quantity filled;
  Quantity hidden;     // iceberg reserve not shown in the book; 0 for an ordinary order
  OrderIndex prev;  // towards the head (older) of the level's FIFO
  OrderIndex next;  // towards the tail (newer); also links the free list
  SymbolId symbol_id;
  Side side;
  SelfTradePrevention stp;  // used again when a modify re-enters the order
  bool post_only;
  bool iceberg;  // has a display quantity (OrderStore::display), even once hidden is 0

  // What the book shows of this order (> 0 while it rests).
  Quantity visible() const { return remaining - hidden; }
};
static_assert(sizeof(Order) == 64, "one node, one cache line");

// Owns the node of every order the engine still knows by id, plus the index of
// those ids. A node is taken when an order is accepted and stays with its id until
// the id is forgotten: while the order rests (remaining > 0) and then, done
// (remaining == 0), for a bounded window: an accepted id stays known while its
// order works and until `id_window` more orders are done after it (a ring of the
// latest done nodes). So memory follows the book plus the window, not the history.
//
// Why done orders keep their node: retiring one (a filled maker, a cancel) then
// touches only the node the caller already has in cache, not the id index, whose
// slot for an old id is a cache miss; the ring's oldest node, whose id leaves the
// index, is known far ahead and is prefetched.
class OrderStore {
 public:
  static constexpr std::size_t kDefaultIdWindow = std::size_t{1} << 17;

  explicit OrderStore(std::size_t expected_orders = 1024,
                      std::size_t id_window = kDefaultIdWindow)
      : ids_(expected_orders), id_window_(id_window ? id_window : 1) {
    nodes_.reserve(expected_orders);
  }

  bool known(OrderId id) const { return ids_.find(id) != OrderIdMap::kAbsent; }

  // Index of the live (resting) order with this id, or kNoOrder.
  OrderIndex find_live(OrderId id) const {
    const std::uint32_t v = ids_.find(id);
    return (v == OrderIdMap::kAbsent || nodes_[v].remaining == 0) ? kNoOrder : v;
  }

  // Takes a node for a newly accepted order (`id` must not be known) and indexes
  // the id to it. The node is neither resting nor done until place() or finish().
  // Invalidates references to other nodes (the pool may grow).
  OrderIndex accept(OrderId id);

  // The accepted order rests: `order` (same id; links left unset; an ordinary order,
  // iceberg false) fills its node.
  void place(OrderIndex idx, const Order& order) {
    nodes_[idx] = order;
    ++live_;
  }

  // place() for an iceberg with this display quantity (> 0): of `order.remaining`, it
  // shows min(display, remaining) and hides the rest.
  void place_iceberg(OrderIndex idx, const Order& order, Quantity display) {
    place(idx, order);
    Order& o = nodes_[idx];
    o.hidden = o.remaining > display ? o.remaining - display : 0;
    o.iceberg = true;
    set_display(idx, display);
  }

  // accept() and place() at once (a restored order, with its hidden quantity set, and
  // its display quantity: 0 for an ordinary order).
  OrderIndex add(const Order& order, Quantity display) {
    const OrderIndex idx = accept(order.order_id);
    place(idx, order);
    if (display != 0) {
      nodes_[idx].iceberg = true;
      set_display(idx, display);
    }
    return idx;
  }

  // An iceberg's display quantity, 0 for an ordinary order.
  Quantity display(OrderIndex idx) const { return nodes_[idx].iceberg ? displays_[idx] : 0; }

  // An accepted order that is not resting is done: its node joins the window.
  void finish(OrderIndex idx) {
    nodes_[idx].remaining = 0;
    remember(idx);
  }

  // A resting order is done (filled, cancelled); the caller has unlinked it.
  void retire(OrderIndex idx) {
    --live_;
    finish(idx);
  }

  // A resting order leaves the book to re-enter at once under its id (a modify's
  // cancel-replace): it keeps its node and is placed or finished again.
  void lift(OrderIndex) { --live_; }

  // Batch execution's cache hints: the id's slot in the index; then, once that is in
  // cache, the index of the id's node (live or done), or kNoOrder if it is not known.
  void prefetch_id(OrderId id) const { ids_.prefetch(id); }
  OrderIndex index_of(OrderId id) const {
    const std::uint32_t v = ids_.find(id);
    return v == OrderIdMap::kAbsent ? kNoOrder : v;
  }

  Order& at(OrderIndex idx) { return nodes_[idx]; }
  const Order& at(OrderIndex idx) const { return nodes_[idx]; }

  std::size_t live() const { return live_; }
  std::size_t known_ids() const { return ids_.size(); }
  std::size_t id_window() const { return id_window_; }

 private:
  // Appends a done node to the ring; the node it overwrites is forgotten (its id
  // leaves the index) and freed.
  void remember(OrderIndex idx);

  void set_display(OrderIndex idx, Quantity display) {
    if (idx >= displays_.size()) displays_.resize(nodes_.size(), 0);
    displays_[idx] = display;
  }

  std::vector<Order, HugePageAllocator<Order>> nodes_;
  // Display quantities by node, valid where the node's `iceberg` is set. Grown only
  // when an iceberg rests on a node beyond it, so books without icebergs pay nothing.
  std::vector<Quantity> displays_;
  OrderIndex free_head_ = kNoOrder;
  std::size_t live_ = 0;
  OrderIdMap ids_;
  std::size_t id_window_;
  std::vector<OrderIndex> recent_;  // grows to id_window_, then a ring
  std::size_t recent_next_ = 0;
};

}  // namespace bourse::engine
