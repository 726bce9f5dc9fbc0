#include "bourse/engine/order_store.hpp"

#include <stdexcept>

namespace bourse::engine {

OrderIndex OrderStore::add(const Order& order) {
  OrderIndex idx;
  if (free_head_ != kNoOrder) {
    idx = free_head_;
    free_head_ = nodes_[idx].next;
    nodes_[idx] = order;
  } else {
    // Indices must stay below the id map's reserved values.
    if (nodes_.size() >= kRetired) throw std::length_error("order pool exhausted");
    idx = static_cast<OrderIndex>(nodes_.size());
    nodes_.push_back(order);
  }
  ids_.put(order.order_id, idx);
  ++live_;
  return idx;
}

void OrderStore::remember(OrderId id) {
  if (recent_.size() < id_window_) {
    recent_.push_back(id);
    return;
  }
  // An id that works again (a modify re-entered it) is kept: the window holds only
  // ids that stayed done.
  ids_.erase_if_value(recent_[recent_next_], kRetired);
  recent_[recent_next_] = id;
  if (++recent_next_ == recent_.size()) recent_next_ = 0;
  // The next done order evicts this one: its slot is a cache miss, fetched meanwhile.
  ids_.prefetch(recent_[recent_next_]);
}

void OrderStore::retire(OrderIndex idx) {
  remember(nodes_[idx].order_id);
  release(idx);
}

void OrderStore::release(OrderIndex idx) {
  Order& o = nodes_[idx];
  ids_.put(o.order_id, kRetired);
  o.remaining = 0;
  o.prev = kNoOrder;
  o.next = free_head_;
  free_head_ = idx;
  --live_;
}

}  // namespace bourse::engine
