#include "bourse/engine/order_book.hpp"

#include <algorithm>
#include <cassert>
#include <limits>

namespace bourse::engine {

Price Taker::any_price(Side side) {
  return side == Side::BUY ? std::numeric_limits<Price>::max()
                           : std::numeric_limits<Price>::min();
}

OrderBook::OrderBook(SymbolId symbol, OrderStore& store) : symbol_(symbol), store_(store) {}

namespace {

// Where, between a side's first level and its second-best, `price` would sit if the
// levels were spread evenly over the prices: index 1 to n - 2 of n >= 3 levels, for a
// price beyond the first level and at or before the second-best (callers check).
template <typename Level>
std::size_t interpolate(const std::vector<Level>& v, Price price) {
  const std::size_t n = v.size();
  const double first = static_cast<double>(v.front().price);
  const double span = static_cast<double>(v[n - 2].price) - first;
  const double at = 1.0 + (static_cast<double>(price) - first) / span * static_cast<double>(n - 3);
  return static_cast<std::size_t>(std::min(std::max(1.0, at), static_cast<double>(n - 2)));
}

// std::lower_bound over a side's levels, starting where the price should be: a book's
// levels are searched on every rest, modify and cancel. Most searches land at or beyond
// the best two levels (the back): two reads, no search. Others start at the
// interpolated place and gallop out to bracket the price, then halve the bracket:
// a few reads in the lines next to that place, where a binary search read a line at
// each halving of the whole side (the books of 10,000 symbols are out of cache, so
// each was a miss), and which a batch (Engine::execute) prefetches ahead.
template <typename Level, typename Before>
std::size_t lower_bound_index(const std::vector<Level>& v, Price price, Before before) {
  const std::size_t n = v.size();
  if (n == 0) return 0;
  if (before(v[n - 1].price, price)) return n;
  if (n == 1 || before(v[n - 2].price, price)) return n - 1;
  if (!before(v[0].price, price)) return 0;
  // The answer is in [1, n - 2]. Most often within a few levels of the guess: count the
  // levels before the price in a window of eight around it, without a branch per level.
  const std::size_t guess = interpolate(v, price);
  constexpr std::size_t kWindow = 8;
  if (n >= kWindow) {
    const std::size_t start = std::min(guess >= kWindow / 2 ? guess - kWindow / 2 : 0, n - kWindow);
    std::size_t below = 0;
    for (std::size_t k = 0; k < kWindow; ++k) below += before(v[start + k].price, price) ? 1 : 0;
    if ((below > 0 || start == 0) && (below < kWindow || start + kWindow == n)) return start + below;
  }
  // Else gallop out from the guess: before(v[lo]) and !before(v[hi]) bracket the answer,
  // (lo, hi].
  std::size_t lo, hi;
  if (before(v[guess].price, price)) {
    lo = guess;
    for (std::size_t step = 1;; step *= 2) {
      hi = std::min(lo + step, n - 2);
      if (!before(v[hi].price, price)) break;
      lo = hi;
    }
  } else {
    hi = guess;
    for (std::size_t step = 1;; step *= 2) {
      lo = hi > step ? hi - step : 0;
      if (before(v[lo].price, price)) break;
      hi = lo;
    }
  }
  while (hi - lo > 1) {
    const std::size_t mid = lo + (hi - lo) / 2;
    (before(v[mid].price, price) ? lo : hi) = mid;
  }
  return hi;
}

}  // namespace

std::size_t OrderBook::position(Side side, Price price) const {
  const std::vector<Level>& v = levels(side);
  if (ladder(side)) {
    if (v.empty()) return 0;
    const Price at = steps(side, v.front().price, price);
    return at < 0 ? 0 : std::min(static_cast<std::size_t>(at), v.size());
  }
  return side == Side::BUY ? lower_bound_index(v, price, [](Price l, Price p) { return l < p; })
                           : lower_bound_index(v, price, [](Price l, Price p) { return l > p; });
}

void OrderBook::prefetch_ends(Side side) const {
  const std::vector<Level>& v = levels(side);
  if (!v.empty()) {
    __builtin_prefetch(v.data());
    __builtin_prefetch(&v.back());
    __builtin_prefetch(&v.back().total);  // a level may straddle two lines
    if (v.size() > 1) __builtin_prefetch(&v[v.size() - 2]);
  }
  const std::vector<Level>& opp = levels(opposite(side));
  if (!opp.empty()) __builtin_prefetch(&opp.back());
}

void OrderBook::prefetch_from(Side side, Price from, Price to) const {
  if (ladder(side)) {
    prefetch_from(side, from);
    prefetch_from(side, to);
  } else {
    // A sparse side's range from the farther of the two from the best covers both.
    prefetch_from(side, (side == Side::BUY ? from < to : from > to) ? from : to);
  }
}

void OrderBook::prefetch_from(Side side, Price price) const {
  // The command is not validated yet: an invalid price has no level to fetch (and a
  // ladder's subtraction is only defined on valid prices).
  if (price <= 0 || price > kMaxPrice) return;
  const std::vector<Level>& v = levels(side);
  if (ladder(side)) {  // the price's level, if the ladder reaches it (a level may straddle two lines)
    const std::size_t at = position(side, price);
    if (at < v.size()) {
      __builtin_prefetch(&v[at]);
      __builtin_prefetch(&v[at].total);
    }
    return;
  }
  if (v.size() < 3) return;
  const std::size_t guess = interpolate(v, price);
  const char* from = reinterpret_cast<const char*>(v.data() + (guess > 4 ? guess - 4 : 0));
  const std::size_t bytes = static_cast<std::size_t>(reinterpret_cast<const char*>(v.data() + v.size()) - from);
  for (std::size_t at = 0; at < bytes; at += 64) __builtin_prefetch(from + at);
}

void OrderBook::prefetch_maker(Side side, Price limit) const {
  const std::vector<Level>& opp = levels(opposite(side));
  if (!opp.empty() && crosses(side, limit, opp.back().price)) __builtin_prefetch(&store_.at(opp.back().head));
}

bool OrderBook::crosses_any(Side taker_side, Price limit) const {
  const std::vector<Level>& opp = levels(opposite(taker_side));
  return !opp.empty() && crosses(taker_side, limit, opp.back().price);
}

Quantity OrderBook::fillable(const Taker& taker, Quantity wanted) const {
  const std::vector<Level>& opp = levels(opposite(taker.side));
  Quantity needed = wanted;
  for (auto it = opp.rbegin(); it != opp.rend() && needed > 0; ++it) {
    if (!crosses(taker.side, taker.limit, it->price)) break;
    // Order by order, not level totals: an order of the taker's own account
    // either stops the match (CANCEL_INCOMING/BOTH) or is skipped (CANCEL_RESTING).
    //
    // Icebergs: match() fills every order ahead of the taker's own one by its shown
    // slice only (a refreshed slice goes to the back, behind that own order), and,
    // with no own order in the way, the whole level including hidden quantity (slices
    // refresh until the level is empty or the taker filled). So two counts: what is
    // still needed after the shown quantity so far (`after_shown`), and after all of
    // it (`needed`); an own order that stops the match answers with the first.
    Quantity after_shown = needed;
    for (OrderIndex i = it->head; i != kNoOrder && after_shown > 0; i = store_.at(i).next) {
      const Order& o = store_.at(i);
      if (o.account_id == taker.account_id) {
        if (taker.stp == SelfTradePrevention::CANCEL_RESTING) continue;
        return wanted - after_shown;
      }
      const Quantity shown = o.visible();
      after_shown -= shown < after_shown ? shown : after_shown;
      needed -= o.remaining < needed ? o.remaining : needed;
    }
    // The level was walked to its end (no own order stopped it), or the shown
    // quantity alone fills the taker (then so does all of it: needed <= after_shown).
  }
  return wanted - needed;
}

void OrderBook::rest(OrderIndex idx) {
  Order& o = store_.at(idx);
  Level& level = levels(o.side)[level_for(o.side, o.price)];
  append(level, idx);
  level.total += o.visible();
}

std::size_t OrderBook::level_for(Side side, Price price) {
  std::vector<Level>& v = levels(side);
  if (!ladder(side)) return sparse_level_for(side, price);
  std::uint8_t& count = ladder_levels(side);
  if (v.empty()) {
    v.push_back(empty_level(price));
    count = 1;
    return 0;
  }
  const std::size_t pos = position(side, price);
  if (pos < v.size() && v[pos].price == price) {  // inside the range: the price's level
    if (v[pos].head != kNoOrder) return pos;
    if (count < kLadderMaxLevels) {
      ++count;
      return pos;
    }
  } else {
    // Beyond one end: the ladder grows to the price, if it stays within its bounds.
    const Price first = v.front().price, best = v.back().price;
    const bool before_first = steps(side, first, price) < 0;
    const Price gap = before_first ? steps(side, price, first) : steps(side, best, price);
    if (fits_ladder(v.size() + static_cast<std::size_t>(gap), count + std::size_t{1})) {
      ++count;
      if (!before_first) {
        for (Price n = 1; n <= gap; ++n) v.push_back(empty_level(stepped(side, best, n)));
        return v.size() - 1;
      }
      v.insert(v.begin(), static_cast<std::size_t>(gap), empty_level(price));  // grows as a vector does
      for (Price n = 1; n < gap; ++n) v[static_cast<std::size_t>(n)].price = stepped(side, price, n);
      return 0;
    }
  }
  make_sparse(side);
  return sparse_level_for(side, price);
}

std::size_t OrderBook::sparse_level_for(Side side, Price price) {
  std::vector<Level>& v = levels(side);
  std::size_t pos = position(side, price);
  if (pos < v.size() && v[pos].price == price) return pos;
  v.insert(v.begin() + static_cast<std::ptrdiff_t>(pos), empty_level(price));
  // Narrow enough now to be a ladder (at most kLadderFree + 2 * 255 levels to build)?
  const Price first = v.front().price;
  const std::size_t span = static_cast<std::size_t>(steps(side, first, v.back().price)) + 1;
  if (!fits_ladder(span, v.size())) return pos;
  std::vector<Level> ladder;
  ladder.reserve(span);
  for (Price n = 0; n < static_cast<Price>(span); ++n) ladder.push_back(empty_level(stepped(side, first, n)));
  for (const Level& l : v) ladder[static_cast<std::size_t>(steps(side, first, l.price))] = l;
  ladder_levels(side) = static_cast<std::uint8_t>(v.size());
  v.swap(ladder);
  set_ladder(side, true);
  return static_cast<std::size_t>(steps(side, first, price));
}

void OrderBook::make_sparse(Side side) {
  std::vector<Level>& v = levels(side);
  v.erase(std::remove_if(v.begin(), v.end(), [](const Level& l) { return l.head == kNoOrder; }), v.end());
  set_ladder(side, false);
}

void OrderBook::append(Level& level, OrderIndex idx) {
  Order& o = store_.at(idx);
  o.prev = level.tail;
  o.next = kNoOrder;
  if (level.tail != kNoOrder) {
    store_.at(level.tail).next = idx;
  } else {
    level.head = idx;
  }
  level.tail = idx;
  ++level.count;
}

void OrderBook::refresh(Level& level, OrderIndex idx) {
  Order& o = store_.at(idx);
  const Quantity display = store_.display(idx);
  const Quantity slice = display < o.hidden ? display : o.hidden;
  o.hidden -= slice;
  level.total += slice;
  // To the back of the level: the refresh is its new time priority. Alone (or last)
  // at its level, it stays where it is, which is the back already.
  if (o.next != kNoOrder) {
    unlink(level, idx);
    append(level, idx);
  }
}

void OrderBook::remove(OrderIndex idx) {
  const Order& o = store_.at(idx);
  std::vector<Level>& v = levels(o.side);
  std::size_t pos = position(o.side, o.price);
  assert(pos < v.size() && v[pos].price == o.price);
  Level& level = v[pos];
  level.total -= o.visible();
  unlink(level, idx);
  if (level.head == kNoOrder) emptied(o.side, pos);
}

void OrderBook::reduce(OrderIndex idx, Quantity new_remaining) {
  Order& o = store_.at(idx);
  std::vector<Level>& v = levels(o.side);
  const std::size_t pos = position(o.side, o.price);
  assert(pos < v.size() && v[pos].price == o.price && new_remaining <= o.remaining);
  // Hidden quantity goes first; the shown slice shrinks only by what is left of the cut.
  const Quantity cut = o.remaining - new_remaining;
  const Quantity from_hidden = cut < o.hidden ? cut : o.hidden;
  o.hidden -= from_hidden;
  v[pos].total -= cut - from_hidden;
  o.remaining = new_remaining;
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
  for (auto it = v.rbegin(); it != v.rend() && max_levels > 0; ++it) {
    if (it->head == kNoOrder) continue;
    --max_levels;
    out.push_back(LevelView{it->price, static_cast<Quantity>(std::min(it->total, kCap)),
                            it->count});
  }
}

}  // namespace bourse::engine

namespace bourse::engine {

void OrderBook::orders(Side side, std::vector<OrderEntry>& out) const {
  const std::vector<Level>& v = levels(side);
  for (auto it = v.rbegin(); it != v.rend(); ++it) {
    for (OrderIndex i = it->head; i != kNoOrder; i = store_.at(i).next) {
      const Order& o = store_.at(i);
      out.push_back(OrderEntry{o.order_id, o.account_id, o.price, o.visible(), o.filled, o.stp,
                               o.post_only, o.hidden, store_.display(i)});
    }
  }
}

void OrderBook::orders_of(AccountId account, std::vector<OrderIndex>& out) const {
  for (const std::vector<Level>* side : {&bids_, &asks_}) {
    for (const Level& level : *side) {
      for (OrderIndex i = level.head; i != kNoOrder; i = store_.at(i).next) {
        if (store_.at(i).account_id == account) out.push_back(i);
      }
    }
  }
}

}  // namespace bourse::engine
