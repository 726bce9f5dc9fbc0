#include "bourse/engine/stop_book.hpp"

namespace bourse::engine {

void StopBook::add(const StopOrder& stop) {
  const Key k = key(stop.side, stop.stop_price, arrivals_++);
  side_map(stop.side).emplace(k, stop);
  index_.emplace(stop.order_id, k);
}

StopOrder* StopBook::find(OrderId id) {
  const auto it = index_.find(id);
  if (it == index_.end()) return nullptr;
  // The key's sign says the side: a buy's stop price is positive, a sell's negated.
  std::map<Key, StopOrder>& m = it->second.first > 0 ? buys_ : sells_;
  return &m.at(it->second);
}

StopOrder StopBook::take(OrderId id) {
  const auto it = index_.find(id);
  std::map<Key, StopOrder>& m = it->second.first > 0 ? buys_ : sells_;
  const auto node = m.find(it->second);
  const StopOrder stop = node->second;
  m.erase(node);
  index_.erase(it);
  return stop;
}

template <class Reached>
void StopBook::pop_while(Side side, Reached reached, std::deque<StopOrder>& out) {
  std::map<Key, StopOrder>& m = side_map(side);
  while (!m.empty() && reached(m.begin()->second.stop_price)) {
    out.push_back(m.begin()->second);
    index_.erase(m.begin()->second.order_id);
    m.erase(m.begin());
  }
}

void StopBook::trigger(Side side, Price first, Price last, std::deque<StopOrder>& out) {
  // A buy's trades rise from `first` to `last`: its first trade reaches every buy stop at
  // or below `first` and every sell stop at or above it (the aggressor's side first), and
  // the later ones the buy stops up to `last`, the lowest first. A sell's fall likewise.
  if (side == Side::BUY) {
    pop_while(Side::BUY, [first](Price stop) { return stop <= first; }, out);
    pop_while(Side::SELL, [first](Price stop) { return stop >= first; }, out);
    pop_while(Side::BUY, [last](Price stop) { return stop <= last; }, out);
  } else {
    pop_while(Side::SELL, [first](Price stop) { return stop >= first; }, out);
    pop_while(Side::BUY, [first](Price stop) { return stop <= first; }, out);
    pop_while(Side::SELL, [last](Price stop) { return stop >= last; }, out);
  }
}

void StopBook::list(Side side, std::vector<StopOrder>& out) const {
  for (const auto& kv : side == Side::BUY ? buys_ : sells_) out.push_back(kv.second);
}

void StopBook::of_account(AccountId account, std::vector<StopOrder>& out) const {
  for (const auto* m : {&buys_, &sells_}) {
    for (const auto& kv : *m) {
      if (kv.second.account_id == account) out.push_back(kv.second);
    }
  }
}

}  // namespace bourse::engine
