// Worked examples of price-time priority for LIMIT GTC orders.
// Each test: resting book, incoming command, expected events, book after.
#include "engine_fixture.hpp"

namespace bourse::engine::testing {
namespace {

using S = OrderStatus;

TEST_F(EngineTest, LimitIntoEmptyBookRests) {
  EXPECT_EQ(limit(1, 7, BUY, 100, 5), (Events{Acc(1), Done(1, S::NEW, 0, 5)}));
  EXPECT_EQ(bids(), (Levels{{100, 5, 1}}));
  EXPECT_EQ(asks(), Levels{});
}

TEST_F(EngineTest, NonCrossingOrdersBothRest) {
  limit(1, 7, BUY, 99, 5);
  EXPECT_EQ(limit(2, 8, SELL, 100, 3), (Events{Acc(2), Done(2, S::NEW, 0, 3)}));
  EXPECT_EQ(bids(), (Levels{{99, 5, 1}}));
  EXPECT_EQ(asks(), (Levels{{100, 3, 1}}));
}

TEST_F(EngineTest, BuyTakerTradesAtMakerPrice) {
  limit(1, 7, SELL, 100, 5);
  EXPECT_EQ(limit(2, 8, BUY, 105, 5),
            (Events{Acc(2), Trd(1, 2, 7, 8, 100, 5, BUY, 0, 0), Done(2, S::FILLED, 5, 0)}));
  EXPECT_EQ(bids(), Levels{});
  EXPECT_EQ(asks(), Levels{});
}

TEST_F(EngineTest, SellTakerTradesAtMakerPrice) {
  limit(1, 7, BUY, 100, 5);
  EXPECT_EQ(limit(2, 8, SELL, 90, 2),
            (Events{Acc(2), Trd(1, 2, 7, 8, 100, 2, SELL, 3, 0), Done(2, S::FILLED, 2, 0)}));
  EXPECT_EQ(bids(), (Levels{{100, 3, 1}}));
}

TEST_F(EngineTest, TakerRemainderRestsAsPartiallyFilled) {
  limit(1, 7, SELL, 100, 3);
  EXPECT_EQ(limit(2, 8, BUY, 101, 10),
            (Events{Acc(2), Trd(1, 2, 7, 8, 100, 3, BUY, 0, 7),
                    Done(2, S::PARTIALLY_FILLED, 3, 7)}));
  EXPECT_EQ(asks(), Levels{});
  // The remainder rests at its own limit, not at the traded price.
  EXPECT_EQ(bids(), (Levels{{101, 7, 1}}));
}

TEST_F(EngineTest, FifoWithinLevel) {
  limit(1, 7, SELL, 100, 2);
  limit(2, 8, SELL, 100, 2);
  limit(3, 9, SELL, 100, 2);
  EXPECT_EQ(limit(4, 5, BUY, 100, 5),
            (Events{Acc(4), Trd(1, 4, 7, 5, 100, 2, BUY, 0, 3),
                    Trd(2, 4, 8, 5, 100, 2, BUY, 0, 1), Trd(3, 4, 9, 5, 100, 1, BUY, 1, 0),
                    Done(4, S::FILLED, 5, 0)}));
  EXPECT_EQ(asks(), (Levels{{100, 1, 1}}));
}

TEST_F(EngineTest, PartiallyFilledMakerKeepsItsPlace) {
  limit(1, 7, BUY, 100, 10);
  limit(2, 8, BUY, 100, 5);
  EXPECT_EQ(limit(3, 9, SELL, 100, 4),
            (Events{Acc(3), Trd(1, 3, 7, 9, 100, 4, SELL, 6, 0), Done(3, S::FILLED, 4, 0)}));
  // Order 1 (6 left) is still ahead of order 2.
  EXPECT_EQ(limit(4, 9, SELL, 100, 8),
            (Events{Acc(4), Trd(1, 4, 7, 9, 100, 6, SELL, 0, 2),
                    Trd(2, 4, 8, 9, 100, 2, SELL, 3, 0), Done(4, S::FILLED, 8, 0)}));
  EXPECT_EQ(bids(), (Levels{{100, 3, 1}}));
}

TEST_F(EngineTest, LaterArrivalAtSameLevelQueuesBehindPartiallyFilledMaker) {
  limit(1, 7, SELL, 100, 10);
  limit(2, 9, BUY, 100, 4);  // order 1 now has 6
  limit(3, 8, SELL, 100, 5);
  EXPECT_EQ(limit(4, 9, BUY, 100, 7),
            (Events{Acc(4), Trd(1, 4, 7, 9, 100, 6, BUY, 0, 1),
                    Trd(3, 4, 8, 9, 100, 1, BUY, 4, 0), Done(4, S::FILLED, 7, 0)}));
}

TEST_F(EngineTest, PricePriorityBeatsTimePriority) {
  limit(1, 7, SELL, 102, 1);  // earlier but worse
  limit(2, 8, SELL, 101, 1);
  EXPECT_EQ(limit(3, 9, BUY, 102, 1),
            (Events{Acc(3), Trd(2, 3, 8, 9, 101, 1, BUY, 0, 0), Done(3, S::FILLED, 1, 0)}));
  EXPECT_EQ(asks(), (Levels{{102, 1, 1}}));
}

TEST_F(EngineTest, SweepsLevelsBestFirstAndRemovesEmptiedLevels) {
  limit(1, 7, SELL, 101, 2);
  limit(2, 7, SELL, 100, 2);
  limit(3, 7, SELL, 103, 2);
  limit(4, 7, SELL, 102, 2);
  EXPECT_EQ(limit(5, 8, BUY, 102, 7),
            (Events{Acc(5), Trd(2, 5, 7, 8, 100, 2, BUY, 0, 5),
                    Trd(1, 5, 7, 8, 101, 2, BUY, 0, 3), Trd(4, 5, 7, 8, 102, 2, BUY, 0, 1),
                    Done(5, S::PARTIALLY_FILLED, 6, 1)}));
  EXPECT_EQ(asks(), (Levels{{103, 2, 1}}));
  EXPECT_EQ(bids(), (Levels{{102, 1, 1}}));
}

TEST_F(EngineTest, SellSweepsBidsHighestFirst) {
  limit(1, 7, BUY, 98, 1);
  limit(2, 7, BUY, 100, 1);
  limit(3, 7, BUY, 99, 1);
  EXPECT_EQ(limit(4, 8, SELL, 99, 3),
            (Events{Acc(4), Trd(2, 4, 7, 8, 100, 1, SELL, 0, 2),
                    Trd(3, 4, 7, 8, 99, 1, SELL, 0, 1), Done(4, S::PARTIALLY_FILLED, 2, 1)}));
  EXPECT_EQ(bids(), (Levels{{98, 1, 1}}));
  EXPECT_EQ(asks(), (Levels{{99, 1, 1}}));
}

TEST_F(EngineTest, LimitStopsAtItsPrice) {
  limit(1, 7, SELL, 100, 1);
  limit(2, 7, SELL, 101, 1);
  EXPECT_EQ(limit(3, 8, BUY, 100, 2),
            (Events{Acc(3), Trd(1, 3, 7, 8, 100, 1, BUY, 0, 1),
                    Done(3, S::PARTIALLY_FILLED, 1, 1)}));
  EXPECT_EQ(bids(), (Levels{{100, 1, 1}}));
  EXPECT_EQ(asks(), (Levels{{101, 1, 1}}));
}

TEST_F(EngineTest, SymbolsAreIsolated) {
  limit(1, 7, SELL, 100, 5, TimeInForce::GTC, 1);
  EXPECT_EQ(limit(2, 8, BUY, 100, 5, TimeInForce::GTC, 2),
            (Events{Acc(2, 2), Done(2, S::NEW, 0, 5, 2)}));
  EXPECT_EQ(asks(1), (Levels{{100, 5, 1}}));
  EXPECT_EQ(bids(2), (Levels{{100, 5, 1}}));
  EXPECT_EQ(bids(1), Levels{});
  EXPECT_EQ(eng.symbol_count(), 2u);
}

TEST_F(EngineTest, FilledMakersAreNoLongerLive) {
  limit(1, 7, SELL, 100, 5);
  limit(2, 8, BUY, 100, 5);
  EXPECT_FALSE(eng.order(1).has_value());
  EXPECT_FALSE(eng.order(2).has_value());
  EXPECT_EQ(eng.live_orders(), 0u);
}

}  // namespace
}  // namespace bourse::engine::testing
