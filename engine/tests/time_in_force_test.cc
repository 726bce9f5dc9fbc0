// Worked examples for MARKET, IOC and FOK orders.
#include "engine_fixture.hpp"

namespace bourse::engine::testing {
namespace {

using S = OrderStatus;
using C = CancelReason;
constexpr TimeInForce GTC = TimeInForce::GTC;
constexpr TimeInForce IOC = TimeInForce::IOC;
constexpr TimeInForce FOK = TimeInForce::FOK;

TEST_F(EngineTest, MarketBuyFillsAcrossLevels) {
  limit(1, 7, SELL, 100, 2);
  limit(2, 7, SELL, 105, 2);
  EXPECT_EQ(market(3, 8, BUY, 3),
            (Events{Acc(3), Trd(1, 3, 7, 8, 100, 2, BUY, 0, 1),
                    Trd(2, 3, 7, 8, 105, 1, BUY, 1, 0), Done(3, S::FILLED, 3, 0)}));
  EXPECT_EQ(asks(), (Levels{{105, 1, 1}}));
}

TEST_F(EngineTest, MarketRemainderIsCancelledNeverRests) {
  limit(1, 7, BUY, 100, 2);
  EXPECT_EQ(market(2, 8, SELL, 5, GTC),
            (Events{Acc(2), Trd(1, 2, 7, 8, 100, 2, SELL, 0, 3),
                    Cxl(2, 3, C::MARKET_REMAINDER), Done(2, S::CANCELLED, 2, 0)}));
  EXPECT_EQ(bids(), Levels{});
  EXPECT_EQ(asks(), Levels{});
  EXPECT_FALSE(eng.order(2).has_value());
}

TEST_F(EngineTest, MarketIntoEmptyBookIsCancelledWhole) {
  EXPECT_EQ(market(1, 8, BUY, 5),
            (Events{Acc(1), Cxl(1, 5, C::MARKET_REMAINDER), Done(1, S::CANCELLED, 0, 0)}));
  EXPECT_EQ(bids(), Levels{});
}

TEST_F(EngineTest, MarketFokFillsWhenEnoughLiquidityAtAnyPrice) {
  limit(1, 7, SELL, 100, 2);
  limit(2, 7, SELL, 900, 2);
  EXPECT_EQ(market(3, 8, BUY, 4, FOK),
            (Events{Acc(3), Trd(1, 3, 7, 8, 100, 2, BUY, 0, 2),
                    Trd(2, 3, 7, 8, 900, 2, BUY, 0, 0), Done(3, S::FILLED, 4, 0)}));
}

TEST_F(EngineTest, MarketFokKilledWhenBookTooThin) {
  limit(1, 7, SELL, 100, 2);
  EXPECT_EQ(market(2, 8, BUY, 3, FOK),
            (Events{Acc(2), Cxl(2, 3, C::FOK_UNFILLABLE), Done(2, S::CANCELLED, 0, 0)}));
  EXPECT_EQ(asks(), (Levels{{100, 2, 1}}));
}

TEST_F(EngineTest, IocPartialFillCancelsRemainder) {
  limit(1, 7, SELL, 100, 2);
  limit(2, 7, SELL, 102, 2);
  EXPECT_EQ(limit(3, 8, BUY, 101, 5, IOC),
            (Events{Acc(3), Trd(1, 3, 7, 8, 100, 2, BUY, 0, 3), Cxl(3, 3, C::IOC_REMAINDER),
                    Done(3, S::CANCELLED, 2, 0)}));
  EXPECT_EQ(bids(), Levels{});
  EXPECT_EQ(asks(), (Levels{{102, 2, 1}}));
}

TEST_F(EngineTest, IocWithoutCrossIsCancelledWhole) {
  limit(1, 7, SELL, 100, 2);
  EXPECT_EQ(limit(2, 8, BUY, 99, 5, IOC),
            (Events{Acc(2), Cxl(2, 5, C::IOC_REMAINDER), Done(2, S::CANCELLED, 0, 0)}));
  EXPECT_EQ(bids(), Levels{});
  EXPECT_EQ(asks(), (Levels{{100, 2, 1}}));
}

TEST_F(EngineTest, IocFullFillHasNoCancel) {
  limit(1, 7, BUY, 100, 5);
  EXPECT_EQ(limit(2, 8, SELL, 100, 5, IOC),
            (Events{Acc(2), Trd(1, 2, 7, 8, 100, 5, SELL, 0, 0), Done(2, S::FILLED, 5, 0)}));
}

TEST_F(EngineTest, FokExactlyFillableAcrossLevelsFills) {
  limit(1, 7, BUY, 101, 2);
  limit(2, 7, BUY, 100, 3);
  EXPECT_EQ(limit(3, 8, SELL, 100, 5, FOK),
            (Events{Acc(3), Trd(1, 3, 7, 8, 101, 2, SELL, 0, 3),
                    Trd(2, 3, 7, 8, 100, 3, SELL, 0, 0), Done(3, S::FILLED, 5, 0)}));
  EXPECT_EQ(bids(), Levels{});
}

TEST_F(EngineTest, FokUnfillableIsKilledBeforeAnyFill) {
  limit(1, 7, BUY, 101, 2);
  limit(2, 7, BUY, 100, 2);
  EXPECT_EQ(limit(3, 8, SELL, 100, 5, FOK),
            (Events{Acc(3), Cxl(3, 5, C::FOK_UNFILLABLE), Done(3, S::CANCELLED, 0, 0)}));
  EXPECT_EQ(bids(), (Levels{{101, 2, 1}, {100, 2, 1}}));
}

TEST_F(EngineTest, FokOnlyCountsLiquidityWithinItsLimit) {
  limit(1, 7, SELL, 100, 2);
  limit(2, 7, SELL, 101, 10);
  EXPECT_EQ(limit(3, 8, BUY, 100, 3, FOK),
            (Events{Acc(3), Cxl(3, 3, C::FOK_UNFILLABLE), Done(3, S::CANCELLED, 0, 0)}));
  EXPECT_EQ(asks(), (Levels{{100, 2, 1}, {101, 10, 1}}));
}

TEST_F(EngineTest, FokIntoEmptyBookIsKilled) {
  EXPECT_EQ(limit(1, 8, BUY, 100, 1, FOK),
            (Events{Acc(1), Cxl(1, 1, C::FOK_UNFILLABLE), Done(1, S::CANCELLED, 0, 0)}));
}

}  // namespace
}  // namespace bourse::engine::testing
