// Depth, top of book, order lookup and the event hash.
#include "engine_fixture.hpp"

namespace bourse::engine::testing {
namespace {

TEST_F(EngineTest, DepthAggregatesAndLimitsLevels) {
  limit(1, 7, BUY, 100, 5);
  limit(2, 8, BUY, 100, 3);
  limit(3, 7, BUY, 99, 1);
  limit(4, 7, BUY, 98, 1);
  limit(5, 7, SELL, 101, 2);
  limit(6, 7, SELL, 103, 4);
  limit(7, 7, SELL, 103, 4);
  std::vector<LevelView> b, a;
  eng.depth(kSym, 2, b, a);
  ASSERT_EQ(b.size(), 2u);
  ASSERT_EQ(a.size(), 2u);
  EXPECT_EQ(b[0].price, 100);
  EXPECT_EQ(b[0].quantity, 8);
  EXPECT_EQ(b[0].order_count, 2u);
  EXPECT_EQ(b[1].price, 99);
  EXPECT_EQ(a[0].price, 101);
  EXPECT_EQ(a[1].price, 103);
  EXPECT_EQ(a[1].quantity, 8);
  EXPECT_EQ(a[1].order_count, 2u);
  eng.depth(kSym, 0, b, a);
  EXPECT_TRUE(b.empty() && a.empty());
}

TEST_F(EngineTest, QueriesOnUnknownSymbolAreEmpty) {
  EXPECT_EQ(bids(99), Levels{});
  TopOfBook t = eng.top(99);
  EXPECT_FALSE(t.bid.has_value());
  EXPECT_FALSE(t.ask.has_value());
  EXPECT_EQ(eng.symbol_count(), 0u);  // queries do not create books
}

TEST_F(EngineTest, TopOfBook) {
  limit(1, 7, BUY, 99, 5);
  limit(2, 7, BUY, 100, 3);
  limit(3, 7, SELL, 102, 2);
  TopOfBook t = eng.top(kSym);
  ASSERT_TRUE(t.bid && t.ask);
  EXPECT_EQ(t.bid->price, 100);
  EXPECT_EQ(t.bid->quantity, 3);
  EXPECT_EQ(t.ask->price, 102);
  EXPECT_EQ(t.ask->order_count, 1u);
}

TEST_F(EngineTest, OrderLookupFollowsFills) {
  EXPECT_FALSE(eng.order(1).has_value());
  limit(1, 7, SELL, 100, 5, TimeInForce::GTC, 3);
  limit(2, 8, BUY, 100, 2, TimeInForce::GTC, 3);
  std::optional<OrderView> o = eng.order(1);
  ASSERT_TRUE(o.has_value());
  EXPECT_EQ(o->symbol_id, 3u);
  EXPECT_EQ(o->side, SELL);
  EXPECT_EQ(o->price, 100);
  EXPECT_EQ(o->remaining, 3);
  EXPECT_EQ(o->filled, 2);
  EXPECT_EQ(o->account_id, 7u);
  limit(3, 8, BUY, 100, 3, TimeInForce::GTC, 3);
  EXPECT_FALSE(eng.order(1).has_value());
}

TEST_F(EngineTest, EventHashIsDeterministicAndSensitive) {
  auto run = [](Quantity last_qty) {
    EventCollector c;
    Engine e(c);
    e.submit(NewOrder{1, 7, 1, Side::SELL, OrderType::LIMIT, TimeInForce::GTC, 100, 5});
    e.submit(NewOrder{2, 8, 1, Side::BUY, OrderType::LIMIT, TimeInForce::GTC, 100, last_qty});
    e.cancel(CancelOrder{1, 7, 1});
    std::uint64_t h = kEventHashSeed;
    for (const Event& ev : c.events) h = hash_event(h, ev);
    EXPECT_EQ(h, e.event_hash());
    return e.event_hash();
  };
  EXPECT_EQ(run(2), run(2));
  EXPECT_NE(run(2), run(3));
  EXPECT_EQ(eng.event_hash(), kEventHashSeed);
  // Rejected cancels count too.
  cancel(5, 5);
  EXPECT_NE(eng.event_hash(), kEventHashSeed);
}

TEST(EventHash, KnownValue) {
  // Pinned so that the Python reference (bourse_engine/reference.py) and any
  // other implementation can check their hash against this definition.
  std::uint64_t h = hash_event(kEventHashSeed, Event::accepted(1, 3));
  h = hash_event(h, Event::trade(3, 1, 2, 7, 8, 100, 5, Side::BUY, 0, -1));
  EXPECT_EQ(h, 0x2780c8ef89704270ULL) << std::hex << h;
}

TEST_F(EngineTest, PoolNodesAreReused) {
  for (OrderId id = 1; id <= 1000; ++id) {
    limit(id, 7, BUY, 100 + static_cast<Price>(id % 10), 1);
    cancel(id, 7);
  }
  EXPECT_EQ(eng.live_orders(), 0u);
  EXPECT_EQ(bids(), Levels{});
}

// Symbol ids below 2^20 are found by index, the rest through the map: both kinds of
// book trade, answer queries and survive a snapshot alike.
TEST_F(EngineTest, BooksOfSmallAndLargeSymbolIdsWorkAlike) {
  constexpr SymbolId kLarge = 5'000'000;
  constexpr SymbolId kSmall = 3;
  for (SymbolId sym : {kLarge, kSmall}) {
    limit(1 + sym, 7, SELL, 100, 5, TimeInForce::GTC, sym);
    EXPECT_EQ(limit(2 + sym, 8, BUY, 100, 2, TimeInForce::GTC, sym),
              (Events{Acc(2 + sym, sym), Trd(1 + sym, 2 + sym, 7, 8, 100, 2, BUY, 3, 0, sym),
                      Done(2 + sym, OrderStatus::FILLED, 2, 0, sym)}));
    EXPECT_EQ(asks(sym), (Levels{{100, 3, 1}}));
  }
  EXPECT_EQ(asks(kSym), Levels{});  // a symbol never traded has no book
  EventCollector other_sink;
  Engine other(other_sink);
  other.restore(eng.snapshot());
  EXPECT_EQ(other.snapshot(), eng.snapshot());
  for (SymbolId sym : {kLarge, kSmall}) {
    other.cancel(CancelOrder{1 + sym, 7, sym});
    EXPECT_EQ(other_sink.events.back(), Done(1 + sym, OrderStatus::CANCELLED, 2, 0, sym));
  }
}

}  // namespace
}  // namespace bourse::engine::testing
