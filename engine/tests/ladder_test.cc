// A book side's two forms: a ladder (a level for every price between its first level and
// its best, empty ones included) and a sparse side (levels with orders only), and the
// moves between them. Worked examples first, then random streams against a model.
#include <limits>
#include <map>
#include <random>

#include "engine_fixture.hpp"

namespace bourse::engine::testing {
namespace {

// --- Worked examples, through the engine ---

TEST_F(EngineTest, DepthSkipsTheLadderEmptyPrices) {
  // Bids at 100 and 103: the ladder holds 100..103, depth shows the two with orders.
  limit(1, 7, BUY, 100, 5);
  limit(2, 7, BUY, 103, 2);
  EXPECT_EQ(bids(), (Levels{{103, 2, 1}, {100, 5, 1}}));
  std::vector<LevelView> b, a;
  eng.depth(kSym, 1, b, a);  // the level limit counts levels with orders
  EXPECT_EQ(b.size(), 1u);
  EXPECT_EQ(b[0].price, 103);
}

TEST_F(EngineTest, AnEmptiedBestLevelNoLongerCrosses) {
  // Resting bids 100 (id 1) and 101 (id 2); 101 is cancelled, so the best bid is 100.
  limit(1, 7, BUY, 100, 5);
  limit(2, 7, BUY, 101, 5);
  cancel(2, 7);
  // A post-only sell at 101 does not cross the empty 101 and rests.
  NewOrder post{3, 8, kSym, SELL, OrderType::LIMIT, TimeInForce::GTC, 101, 4, /*post_only=*/true};
  EXPECT_EQ(submit(post), (Events{Acc(3), Done(3, OrderStatus::NEW, 0, 4)}));
  // One at 100 would take the bid: refused.
  post.order_id = 4;
  post.price = 100;
  EXPECT_EQ(submit(post), (Events{Rej(4, RejectReason::WOULD_TAKE_LIQUIDITY), Done(4, OrderStatus::REJECTED, 0, 0)}));
  EXPECT_EQ(bids(), (Levels{{100, 5, 1}}));
  EXPECT_EQ(asks(), (Levels{{101, 4, 1}}));
}

TEST_F(EngineTest, ATakerWalksPastEmptyLevels) {
  // Asks 100 x2 (id 1), 101 x1 (id 2, then cancelled: 101 is empty), 103 x3 (id 3).
  limit(1, 7, SELL, 100, 2);
  limit(2, 7, SELL, 101, 1);
  limit(3, 7, SELL, 103, 3);
  cancel(2, 7);
  // A buy IOC for 6 at 103 takes 100 then 103 and has 1 left, cancelled.
  EXPECT_EQ(limit(4, 8, BUY, 103, 6, TimeInForce::IOC),
            (Events{Acc(4), Trd(1, 4, 7, 8, 100, 2, BUY, 0, 4), Trd(3, 4, 7, 8, 103, 3, BUY, 0, 1),
                    Cxl(4, 1, CancelReason::IOC_REMAINDER), Done(4, OrderStatus::CANCELLED, 5, 0)}));
  EXPECT_TRUE(asks().empty());
  // The side is empty: a buy at 101 rests with nothing to trade.
  EXPECT_EQ(limit(5, 8, BUY, 101, 1), (Events{Acc(5), Done(5, OrderStatus::NEW, 0, 1)}));
}

// --- The forms, on a book directly ---

class LadderTest : public ::testing::Test {
 protected:
  // Rests a new order of one lot at `price` on `side`.
  OrderIndex rest(Side side, Price price) {
    const OrderIndex idx = store.accept(next_id);
    store.place(idx, Order{next_id++, 1, price, 1, 0, 0, kNoOrder, kNoOrder, kSym, side,
                           SelfTradePrevention::CANCEL_INCOMING, false, false});
    book.rest(idx);
    return idx;
  }
  void remove(OrderIndex idx) {
    book.remove(idx);
    store.retire(idx);
  }
  Levels depth(Side side) const {
    std::vector<LevelView> out;
    book.depth(side, 1'000'000, out);
    Levels levels;
    for (const LevelView& l : out) levels.emplace_back(l.price, l.quantity, l.order_count);
    return levels;
  }

  OrderStore store{16};
  OrderBook book{kSym, store};
  OrderId next_id = 1;
};

TEST_F(LadderTest, AFarPriceMakesTheSideSparseAndItsLeavingALadderAgain) {
  rest(BUY, 100);
  EXPECT_TRUE(book.ladder(BUY));
  // 100 and 100,000 in one ladder would be 99,901 levels for 2 with orders: sparse.
  const OrderIndex far = rest(BUY, 100'000);
  EXPECT_FALSE(book.ladder(BUY));
  EXPECT_EQ(depth(BUY), (Levels{{100'000, 1, 1}, {100, 1, 1}}));
  rest(BUY, 99'990);
  EXPECT_EQ(book.level_count(BUY), 3u);
  // The far orders leave; the next new level finds a narrow range: a ladder again.
  remove(far);
  EXPECT_FALSE(book.ladder(BUY));
  remove(store.find_live(3));
  rest(BUY, 102);
  EXPECT_TRUE(book.ladder(BUY));
  EXPECT_EQ(depth(BUY), (Levels{{102, 1, 1}, {100, 1, 1}}));
  EXPECT_EQ(book.level_count(BUY), 2u);
}

TEST_F(LadderTest, ALadderGrowsOnBothEnds) {
  // Asks: the best is the lowest. 105, then 110 (before the first level), then 102 (a
  // new best), then 107 (inside: an empty level takes it).
  rest(SELL, 105);
  rest(SELL, 110);
  rest(SELL, 102);
  rest(SELL, 107);
  EXPECT_TRUE(book.ladder(SELL));
  EXPECT_EQ(depth(SELL), (Levels{{102, 1, 1}, {105, 1, 1}, {107, 1, 1}, {110, 1, 1}}));
  EXPECT_EQ(book.level_count(SELL), 4u);
}

TEST_F(LadderTest, AnEmptiedBestGoesWithTheEmptyLevelsBehindIt) {
  const OrderIndex a = rest(BUY, 100);
  const OrderIndex b = rest(BUY, 104);
  const OrderIndex c = rest(BUY, 101);
  remove(b);  // 104 goes, and 103 and 102 (empty) with it: the best is 101
  EXPECT_EQ(depth(BUY), (Levels{{101, 1, 1}, {100, 1, 1}}));
  remove(c);
  remove(a);
  EXPECT_TRUE(book.empty());
  EXPECT_TRUE(book.ladder(BUY));
}

TEST_F(LadderTest, ALadderLeftThinTurnsSparse) {
  // 200 bids at 1,000..1,199: a ladder of 200 levels, all with orders.
  std::vector<OrderIndex> bids;
  for (Price p = 1'000; p < 1'200; ++p) bids.push_back(rest(BUY, p));
  EXPECT_TRUE(book.ladder(BUY));
  EXPECT_EQ(book.level_slots(BUY), 200u);
  // Cancelled from the worst up, the front empties: it stays while 200 levels span at
  // most 32 plus twice the levels with orders, then the side turns sparse (its empty
  // levels go), so one order left never sits among 199 empty levels.
  for (std::size_t i = 0; i + 1 < bids.size(); ++i) {
    remove(bids[i]);
    if (book.ladder(BUY)) {
      ASSERT_LE(book.level_slots(BUY), 32 + 2 * book.level_count(BUY)) << i;
    }
  }
  EXPECT_EQ(depth(BUY), (Levels{{1'199, 1, 1}}));
  EXPECT_EQ(book.level_slots(BUY), 1u);
}

TEST_F(LadderTest, ALadderHoldsAtMost255LevelsWithOrders) {
  // Bids laid downwards, 300 consecutive prices: the ladder grows at its front until the
  // 256th level with orders, then the side is sparse (its levels, all with orders).
  for (Price p = 5'000; p > 4'700; --p) rest(BUY, p);
  EXPECT_FALSE(book.ladder(BUY));
  EXPECT_EQ(book.level_count(BUY), 300u);
  EXPECT_EQ(book.level_slots(BUY), 300u);
  const Levels all = depth(BUY);
  ASSERT_EQ(all.size(), 300u);
  EXPECT_EQ(all.front(), (Level{5'000, 1, 1}));
  EXPECT_EQ(all.back(), (Level{4'701, 1, 1}));
}

// Random rests and removes on both sides, mostly within a band and now and then far off
// (so that sides change form back and forth), against a model of the levels.
TEST_F(LadderTest, RandomStreamsMatchAModelAcrossTheForms) {
  std::mt19937_64 rng(11);
  std::map<Price, std::uint32_t> model[2];
  std::vector<std::pair<OrderIndex, std::pair<Side, Price>>> live;
  int turned_sparse = 0, turned_ladder = 0;
  for (int step = 0; step < 40'000; ++step) {
    const bool was[2] = {book.ladder(BUY), book.ladder(SELL)};
    if (live.size() < 8 || (live.size() < 24 && rng() % 2 == 0)) {  // a small book, so far orders come and go
      const Side side = rng() % 2 ? BUY : SELL;
      const bool far = rng() % 30 == 0;
      Price px = 10'000 + static_cast<Price>(rng() % 60) + (far ? static_cast<Price>(rng() % 1'000'000) : 0);
      if (side == SELL) px += 100;  // the sides never cross: only the book's own moves
      live.push_back({rest(side, px), {side, px}});
      ++model[side == BUY ? 0 : 1][px];
    } else {
      const std::size_t at = rng() % live.size();
      const auto [idx, where] = live[at];
      live[at] = live.back();
      live.pop_back();
      remove(idx);
      auto& levels = model[where.first == BUY ? 0 : 1];
      if (--levels[where.second] == 0) levels.erase(where.second);
    }
    for (const Side side : {BUY, SELL}) {
      const int s = side == BUY ? 0 : 1;
      turned_sparse += was[s] && !book.ladder(side);
      turned_ladder += !was[s] && book.ladder(side);
    }
    if (step % 37 == 0) {
      for (const Side side : {BUY, SELL}) {
        if (book.ladder(side)) {  // the bounds hold after every kind of change
          ASSERT_LE(book.level_count(side), 255u) << "step " << step;
          ASSERT_LE(book.level_slots(side), 32 + 2 * book.level_count(side)) << "step " << step;
        } else {
          ASSERT_EQ(book.level_slots(side), book.level_count(side)) << "step " << step;
        }
        Levels expected;
        for (const auto& [px, n] : model[side == BUY ? 0 : 1]) expected.emplace_back(px, n, n);
        if (side == BUY) std::reverse(expected.begin(), expected.end());
        ASSERT_EQ(depth(side), expected) << "step " << step;
        ASSERT_EQ(book.level_count(side), expected.size()) << "step " << step;
      }
    }
  }
  // Both moves happened, many times: the stream exercised what it is for.
  EXPECT_GT(turned_sparse, 200);
  EXPECT_GT(turned_ladder, 200);
}

// Commands are fetched for before they are checked: a batch's hints must take any
// price, as the commands themselves refuse it (INVALID_PRICE), on ladders and sparse
// sides alike. Under the sanitizers this finds an overflow in a ladder's subtraction.
TEST(LadderBatch, HintsTakeInvalidPrices) {
  // Each bad command is the first of a batch on its own book (a book fetched lately is not
  // fetched again), so its hints are computed: 20 books with a bid at 100 and an ask at
  // 200, then 40 cancels of nothing, then per book one command with a bad price.
  const Price bad[] = {std::numeric_limits<Price>::min(), -1, 0, kMaxPrice + 1, std::numeric_limits<Price>::max()};
  std::vector<Engine::Command> cmds;
  OrderId next_id = 1;
  for (SymbolId sym = 1; sym <= 20; ++sym) {
    for (const auto& [side, px] : {std::pair{BUY, Price{100}}, std::pair{SELL, Price{200}}}) {
      cmds.push_back({Engine::Command::Op::SUBMIT,
                      NewOrder{next_id++, 1, sym, side, OrderType::LIMIT, TimeInForce::GTC, px, 1}});
    }
  }
  for (OrderId id = 900; id < 940; ++id) cmds.push_back({Engine::Command::Op::CANCEL, NewOrder{id, 1, 999}});
  for (SymbolId sym = 1; sym <= 20; ++sym) {
    const Price px = bad[(sym - 1) % 5];
    switch ((sym - 1) / 5) {
      case 0:  // a submit on each side, a modify of the bid and of the ask
      case 1:
        cmds.push_back({Engine::Command::Op::SUBMIT, NewOrder{next_id++, 1, sym, sym <= 5 ? BUY : SELL,
                                                              OrderType::LIMIT, TimeInForce::GTC, px, 1}});
        break;
      default: {
        NewOrder modify{2 * sym - (sym <= 15 ? 1 : 0), 1, sym};  // the book's bid, then its ask
        modify.price = px;
        modify.quantity = 1;
        cmds.push_back({Engine::Command::Op::MODIFY, modify});
      }
    }
  }
  EventCollector one_sink, batch_sink;
  Engine one(one_sink, 16), batched(batch_sink, 16);
  expect_batches_run_as_single_calls(cmds, 100, one, one_sink, batched, batch_sink, "invalid prices");
  EXPECT_EQ(one.live_orders(), 40u);
  // And whole, as one batch.
  EventCollector whole_sink;
  Engine whole(whole_sink, 16);
  whole.execute(cmds.data(), cmds.size());
  EXPECT_TRUE(whole_sink.events == one_sink.events);
}

// The same kind of stream through the engine, one call per command against batches:
// the batch pipeline's hints read ladders and sparse sides alike.
TEST(LadderBatch, BatchesRunAsSingleCallsAcrossTheForms) {
  std::mt19937_64 rng(5);
  std::vector<Engine::Command> cmds;
  OrderId next_id = 1;
  for (int i = 0; i < 20'000; ++i) {
    const Side side = rng() % 2 ? BUY : SELL;
    const bool far = rng() % 30 == 0;
    const Price off = static_cast<Price>(rng() % 50) + (far ? static_cast<Price>(rng() % 100'000) : 0);
    NewOrder o{0, 1 + rng() % 5, 1 + static_cast<SymbolId>(rng() % 3), side, OrderType::LIMIT,
               TimeInForce::GTC, side == BUY ? 100'000 - off : 100'001 + off, 1 + static_cast<Quantity>(rng() % 9)};
    const unsigned r = static_cast<unsigned>(rng() % 10);
    if (r < 5) {
      o.order_id = next_id++;
      cmds.push_back({Engine::Command::Op::SUBMIT, o});
    } else {
      o.order_id = 1 + rng() % next_id;
      cmds.push_back({r < 7 ? Engine::Command::Op::CANCEL : Engine::Command::Op::MODIFY, o});
    }
  }
  EventCollector one_sink, batch_sink;
  Engine one(one_sink, 16), batched(batch_sink, 16);
  expect_batches_run_as_single_calls(cmds, 29, one, one_sink, batched, batch_sink, "ladder stream");
  EXPECT_GT(one.live_orders(), 100u);
}

}  // namespace
}  // namespace bourse::engine::testing
