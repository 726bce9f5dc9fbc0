#include "bourse/engine/order_book.hpp"

#include <algorithm>
#include <cassert>
#include <limits>

namespace bourse::engine {

namespace {

Side opposite(Side s) { return s == Side::BUY ? Side::SELL : Side::BUY; }

// Does a taker on `taker_side` with this limit trade against a resting price?
bool crosses(Side taker_side, Price limit, Price resting) {
  return taker_side == Side::BUY ? resting <= limit : resting >= limit;
}

}  // namespace

Price Taker::any_price(Side side) {
  return side == Side::BUY ? std::numeric_limits<Price>::max()
                           : std::numeric_limits<Price>::min();
}

OrderBook::OrderBook(SymbolId symbol, OrderStore& store) : symbol_(symbol), store_(store) {}

std::size_t OrderBook::position(Side side, Price price) const {
  const std::vector<Level>& v = levels(side);
  auto it = side == Side::BUY
                ? std::lower_bound(v.begin(), v.end(), price,
                                   [](const Level& l, Price p) { return l.price < p; })
                : std::lower_bound(v.begin(), v.end(), price,
                                   [](const Level& l, Price p) { return l.price > p; });
  return static_cast<std::size_t>(it - v.begin());
}

Quantity OrderBook::fillable(Side taker_side, Price limit, Quantity wanted) const {
  const std::vector<Level>& opp = levels(opposite(taker_side));
  Quantity needed = wanted;
  for (auto it = opp.rbegin(); it != opp.rend() && needed > 0; ++it) {
    if (!crosses(taker_side, limit, it->price)) break;
    // Compare before subtracting: a level total may exceed int64.
    needed = it->total >= needed ? 0 : needed - static_cast<Quantity>(it->total);
  }
  return wanted - needed;
}

void OrderBook::match(Taker& taker, EventHandler& out) {
  std::vector<Level>& opp = levels(opposite(taker.side));
  while (taker.remaining > 0 && !opp.empty()) {
    Level& level = opp.back();
    if (!crosses(taker.side, taker.limit, level.price)) break;
    while (taker.remaining > 0 && level.head != kNoOrder) {
      const OrderIndex maker_idx = level.head;
      Order& maker = store_.at(maker_idx);
      const Quantity q = std::min(taker.remaining, maker.remaining);
      maker.remaining -= q;
      maker.filled += q;
      taker.remaining -= q;
      taker.filled += q;
      level.total -= q;
      out.on_event(Event::trade(symbol_, maker.order_id, taker.order_id, maker.account_id,
                                taker.account_id, level.price, q, taker.side,
                                maker.remaining, taker.remaining));
      if (maker.remaining == 0) {
        unlink(level, maker_idx);
        store_.retire(maker_idx);
      }
    }
    if (level.head == kNoOrder) opp.pop_back();
  }
}

void OrderBook::rest(OrderIndex idx) {
  Order& o = store_.at(idx);
  std::vector<Level>& v = levels(o.side);
  std::size_t pos = position(o.side, o.price);
  if (pos == v.size() || v[pos].price != o.price) {
    v.insert(v.begin() + static_cast<std::ptrdiff_t>(pos),
             Level{o.price, kNoOrder, kNoOrder, 0, 0});
  }
  Level& level = v[pos];
  o.prev = level.tail;
  o.next = kNoOrder;
  if (level.tail != kNoOrder) {
    store_.at(level.tail).next = idx;
  } else {
    level.head = idx;
  }
  level.tail = idx;
  ++level.count;
  level.total += o.remaining;
}

void OrderBook::remove(OrderIndex idx) {
  const Order& o = store_.at(idx);
  std::vector<Level>& v = levels(o.side);
  std::size_t pos = position(o.side, o.price);
  assert(pos < v.size() && v[pos].price == o.price);
  Level& level = v[pos];
  level.total -= o.remaining;
  unlink(level, idx);
  if (level.head == kNoOrder) v.erase(v.begin() + static_cast<std::ptrdiff_t>(pos));
}

void OrderBook::unlink(Level& level, OrderIndex idx) {
  Order& o = store_.at(idx);
  if (o.prev != kNoOrder) {
    store_.at(o.prev).next = o.next;
  } else {
    level.head = o.next;
  }
  if (o.next != kNoOrder) {
    store_.at(o.next).prev = o.prev;
  } else {
    level.tail = o.prev;
  }
  o.prev = o.next = kNoOrder;
  --level.count;
}

void OrderBook::depth(Side side, std::size_t max_levels, std::vector<LevelView>& out) const {
  const std::vector<Level>& v = levels(side);
  constexpr Total kCap = std::numeric_limits<Quantity>::max();
  for (auto it = v.rbegin(); it != v.rend() && max_levels > 0; ++it, --max_levels) {
    out.push_back(LevelView{it->price, static_cast<Quantity>(std::min(it->total, kCap)),
                            it->count});
  }
}

}  // namespace bourse::engine
