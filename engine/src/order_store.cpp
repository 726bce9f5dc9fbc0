#include "bourse/engine/order_store.hpp"

#include <stdexcept>

namespace bourse::engine {

OrderIndex OrderStore::accept(OrderId id) {
  OrderIndex idx;
  if (free_head_ != kNoOrder) {
    idx = free_head_;
    free_head_ = nodes_[idx].next;
  } else {
    // Indices must stay below the id map's reserved value.
    if (nodes_.size() >= OrderIdMap::kMaxValue) throw std::length_error("order pool exhausted");
    idx = static_cast<OrderIndex>(nodes_.size());
    nodes_.emplace_back();
  }
  nodes_[idx].order_id = id;
  nodes_[idx].remaining = 0;
  ids_.put(id, idx);
  // Ids mostly arrive in sequence (an order service mints its Snowflake ids in
  // order), four to a line of the index: fetch the next four's line now, so that
  // their duplicate check, which has nothing to prefetch from, finds it in cache.
  ids_.prefetch((id | 3) + 1);
  return idx;
}

void OrderStore::remember(OrderIndex idx) {
  if (recent_.size() < id_window_) {
    recent_.push_back(idx);
    return;
  }
  const OrderIndex old = recent_[recent_next_];
  Order& gone = nodes_[old];
  ids_.erase_if_value(gone.order_id, old);
  gone.next = free_head_;
  free_head_ = old;
  recent_[recent_next_] = idx;
  if (++recent_next_ == recent_.size()) recent_next_ = 0;
  // The nodes evicted next, and then their id slots, are cache misses: fetch them a
  // few done orders ahead, the slot once its node (prefetched earlier) says the id.
  const auto ahead = [this](std::size_t k) {
    const std::size_t i = recent_next_ + k;
    return recent_[i < recent_.size() ? i : i % recent_.size()];
  };
  __builtin_prefetch(&nodes_[ahead(16)]);
  ids_.prefetch_erase(nodes_[ahead(8)].order_id);
}

}  // namespace bourse::engine
