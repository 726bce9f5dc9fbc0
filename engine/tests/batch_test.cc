// Engine::execute over a batch against one call per command, and the level search on
// sides with many levels at uneven prices (where the interpolated guess is far off).
#include <map>
#include <random>

#include "engine_fixture.hpp"

namespace bourse::engine::testing {
namespace {

using Command = Engine::Command;

// A stream over a few symbols with everything a batch must treat as one call each
// would: trades, partial fills, modifies (in place and cancel-replace), cancels of live,
// done and unknown ids, rejects (duplicate ids, bad prices), IOC and market orders.
std::vector<Command> stream(std::size_t count, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<Command> out;
  OrderId next_id = 1;
  for (std::size_t i = 0; i < count; ++i) {
    const SymbolId sym = 1 + static_cast<SymbolId>(rng() % 5);
    const Side side = rng() % 2 ? Side::BUY : Side::SELL;
    const Price px = 1000 + static_cast<Price>(rng() % 40) - (side == Side::BUY ? 22 : 18);
    const AccountId acct = 1 + rng() % 7;
    const unsigned r = static_cast<unsigned>(rng() % 100);
    NewOrder o{0, acct, sym, side, OrderType::LIMIT, TimeInForce::GTC, px,
               static_cast<Quantity>(1 + rng() % 20)};
    if (r < 45) {
      o.order_id = r < 2 && next_id > 1 ? next_id - 1 : next_id++;  // now and then a duplicate
      if (r == 44) o.price = -5;                                      // and a bad price
      if (r >= 40 && r < 43) o.tif = TimeInForce::IOC;
      if (r == 43) o.type = OrderType::MARKET, o.tif = TimeInForce::IOC, o.price = 0;
      out.push_back(Command{Command::Op::SUBMIT, o});
    } else {
      // Ids from the whole history: many live, some done, a few never used.
      o.order_id = 1 + rng() % (next_id + 3);
      out.push_back(Command{r < 65 ? Command::Op::CANCEL : Command::Op::MODIFY, o});
    }
  }
  return out;
}

TEST(Batch, RunsExactlyAsOneCallPerCommand) {
  for (std::uint64_t seed = 1; seed <= 4; ++seed) {
    const std::vector<Command> cmds = stream(20'000, seed);
    EventCollector one_sink, batch_sink;
    Engine one(one_sink, 16, 500), batched(batch_sink, 16, 500);
    expect_batches_run_as_single_calls(cmds, 37, one, one_sink, batched, batch_sink, "seed " + std::to_string(seed));
    EXPECT_GT(one.live_orders(), 100u);
  }
}

// The pipeline's first commands have steps no earlier step prepared: on an engine with
// nothing in its pool yet (nothing reserved either) they must touch no node.
TEST(Batch, AFreshEngineWithNothingReserved) {
  EventCollector sink;
  Engine eng(sink, 0);
  std::vector<Command> cmds;
  for (OrderId id = 1; id <= 12; ++id) {
    cmds.push_back(Command{Command::Op::SUBMIT, NewOrder{id, id, kSym, id % 2 ? BUY : SELL, OrderType::LIMIT,
                                                       TimeInForce::GTC, 100, 1}});
  }
  cmds.push_back(Command{Command::Op::CANCEL, NewOrder{99, 1, kSym}});
  eng.execute(cmds.data(), cmds.size());
  EXPECT_EQ(eng.live_orders(), 0u);  // six pairs traded away
  EXPECT_EQ(sink.events.back(), Rej(99, RejectReason::UNKNOWN_ORDER));
}

// Depth as a model keeps it: price -> (total, count), per side.
using Model = std::map<Price, std::pair<Quantity, std::uint32_t>>;

Levels best_first(const Model& m, Side side) {
  Levels out;
  if (side == Side::BUY) {
    for (auto it = m.rbegin(); it != m.rend(); ++it) out.emplace_back(it->first, it->second.first, it->second.second);
  } else {
    for (const auto& [price, v] : m) out.emplace_back(price, v.first, v.second);
  }
  return out;
}

Levels depth_of(const Engine& eng, Side side) {
  std::vector<LevelView> bids, asks;
  eng.depth(kSym, 100'000, bids, asks);
  Levels out;
  for (const LevelView& l : side == Side::BUY ? bids : asks) out.emplace_back(l.price, l.quantity, l.order_count);
  return out;
}

TEST(LevelSearch, UnevenPricesManyLevels) {
  // Bids below 10^9 and asks above, never crossing: prices in tight clusters, with gaps
  // of many orders of magnitude between them, so interpolating between a side's ends
  // guesses far from the place and the search must gallop to it.
  std::mt19937_64 rng(7);
  const Price clusters[] = {1, 50, 51, 400, 90'000, 1'000'000, 999'999'000};
  const auto price_of = [&](Side side) {
    const Price base = clusters[rng() % 7] + static_cast<Price>(rng() % 12);
    return side == Side::BUY ? base : 2'000'000'000 - base + (rng() % 3 == 0 ? 700'000'000'000 : 0);
  };
  EventCollector sink;
  Engine eng(sink, 16);
  Model bids, asks;
  std::map<OrderId, std::tuple<Side, Price, Quantity>> live;
  OrderId next_id = 1;
  for (int step = 0; step < 6'000; ++step) {
    if (live.empty() || rng() % 3 != 0) {
      const Side side = rng() % 2 ? Side::BUY : Side::SELL;
      const Price px = price_of(side);
      const Quantity qty = 1 + static_cast<Quantity>(rng() % 9);
      eng.submit(NewOrder{next_id, 1, kSym, side, OrderType::LIMIT, TimeInForce::GTC, px, qty});
      live[next_id++] = {side, px, qty};
      auto& level = (side == Side::BUY ? bids : asks)[px];
      level.first += qty;
      ++level.second;
    } else {
      auto it = live.begin();
      std::advance(it, static_cast<long>(rng() % live.size()));
      const auto [side, px, qty] = it->second;
      Model& m = side == Side::BUY ? bids : asks;
      if (rng() % 2 == 0) {
        eng.cancel(CancelOrder{it->first, 1, kSym});
        live.erase(it);
      } else {  // to another price of the same side: out of one level, into another
        const Price to = price_of(side);
        eng.modify(ModifyOrder{it->first, 1, kSym, to, qty});
        it->second = {side, to, qty};
        auto& level = m[to];
        level.first += qty;
        ++level.second;
      }
      auto& level = m.at(px);
      level.first -= qty;
      if (--level.second == 0) m.erase(px);
    }
    if (step % 50 == 0 || step > 5'900) {
      ASSERT_EQ(depth_of(eng, Side::BUY), best_first(bids, Side::BUY)) << "step " << step;
      ASSERT_EQ(depth_of(eng, Side::SELL), best_first(asks, Side::SELL)) << "step " << step;
    }
  }
  EXPECT_GT(bids.size() + asks.size(), 60u);
}

}  // namespace
}  // namespace bourse::engine::testing
