// Randomised invariants (the event-by-event comparison against a reference
// model lives in the Python property tests). Mostly here to drive pool reuse
// and level insert/erase hard under sanitizers.
#include <algorithm>
#include <map>
#include <random>

#include "engine_fixture.hpp"

namespace bourse::engine::testing {
namespace {

struct Live {
  Side side;
  Price price;
  Quantity remaining;
  AccountId account;
};

// Rebuilds the book purely from events, then checks the engine agrees.
class Shadow final : public EventHandler {
 public:
  void on_event(const Event& e) override {
    if (e.kind == EventKind::TRADE) {
      Live& m = live.at(e.maker_order_id);
      EXPECT_EQ(m.remaining - e.quantity, e.maker_remaining);
      EXPECT_EQ(e.price, m.price);
      m.remaining = e.maker_remaining;
      if (m.remaining == 0) live.erase(e.maker_order_id);
    } else if (e.kind == EventKind::CANCELLED) {
      live.erase(e.order_id);
    } else if (e.kind == EventKind::MODIFIED) {
      const Live& m = live.at(e.order_id);
      pending.side = m.side;
      pending.price = e.price;
      pending.account_id = m.account;
      live.erase(e.order_id);
    } else if (e.kind == EventKind::DONE && e.remaining > 0) {
      live[e.order_id] = Live{pending.side, pending.price, e.remaining, pending.account_id};
    }
  }
  NewOrder pending;
  std::map<OrderId, Live> live;
};

Levels expected_side(const std::map<OrderId, Live>& live, Side side) {
  std::map<Price, std::pair<Quantity, std::uint32_t>> agg;
  for (const auto& [id, o] : live) {
    if (o.side != side) continue;
    agg[o.price].first += o.remaining;
    agg[o.price].second += 1;
  }
  Levels out;
  for (const auto& [px, qc] : agg) out.emplace_back(px, qc.first, qc.second);
  if (side == Side::BUY) std::reverse(out.begin(), out.end());
  return out;
}

TEST(RandomOps, BookMatchesEventsAndNeverCrosses) {
  Shadow shadow;
  Engine eng(shadow, 16);
  std::mt19937_64 rng(7);
  OrderId next = 1;
  for (int step = 0; step < 30000; ++step) {
    const auto r = rng() % 8;
    if (r < 2 && !shadow.live.empty()) {
      auto it = shadow.live.begin();
      std::advance(it, static_cast<long>(rng() % shadow.live.size()));
      eng.cancel(CancelOrder{it->first, it->second.account, kSym});
    } else if (r < 4 && !shadow.live.empty()) {
      auto it = shadow.live.begin();
      std::advance(it, static_cast<long>(rng() % shadow.live.size()));
      eng.modify(ModifyOrder{it->first, it->second.account, kSym,
                             rng() % 2 ? it->second.price : 80 + static_cast<Price>(rng() % 40),
                             static_cast<Quantity>(1 + rng() % 20)});
    } else {
      NewOrder o{next++, 1 + rng() % 3, kSym, rng() % 2 ? BUY : SELL,
                 rng() % 10 == 0 ? OrderType::MARKET : OrderType::LIMIT,
                 static_cast<TimeInForce>(1 + rng() % 3), 0,
                 static_cast<Quantity>(1 + rng() % 20), false,
                 static_cast<SelfTradePrevention>(1 + rng() % 3)};
      if (o.type == OrderType::LIMIT) o.price = 80 + static_cast<Price>(rng() % 40);
      shadow.pending = o;
      eng.submit(o);
    }
    std::vector<LevelView> b, a;
    eng.depth(kSym, 1000, b, a);
    if (!b.empty() && !a.empty()) {
      ASSERT_LT(b[0].price, a[0].price) << step;
    }
    if (step % 97 == 0) {
      Levels bids, asks;
      for (auto& l : b) bids.emplace_back(l.price, l.quantity, l.order_count);
      for (auto& l : a) asks.emplace_back(l.price, l.quantity, l.order_count);
      ASSERT_EQ(bids, expected_side(shadow.live, BUY)) << step;
      ASSERT_EQ(asks, expected_side(shadow.live, SELL)) << step;
      ASSERT_EQ(eng.live_orders(), shadow.live.size());
    }
  }
}

}  // namespace
}  // namespace bourse::engine::testing
