// Worked examples for Cancel(order_id, account_id, symbol_id).
#include "engine_fixture.hpp"

namespace bourse::engine::testing {
namespace {

using S = OrderStatus;
using R = RejectReason;

TEST_F(EngineTest, CancelRestingOrder) {
  limit(1, 7, BUY, 100, 5);
  EXPECT_EQ(cancel(1, 7), (Events{Cxl(1, 5, CancelReason::USER), Done(1, S::CANCELLED, 0, 0)}));
  EXPECT_EQ(bids(), Levels{});  // the emptied level is gone
  EXPECT_FALSE(eng.order(1).has_value());
}

TEST_F(EngineTest, CancelPartiallyFilledOrderReportsFilledQuantity) {
  limit(1, 7, SELL, 100, 5);
  limit(2, 8, BUY, 100, 3);
  EXPECT_EQ(cancel(1, 7), (Events{Cxl(1, 2, CancelReason::USER), Done(1, S::CANCELLED, 3, 0)}));
  EXPECT_EQ(asks(), Levels{});
}

TEST_F(EngineTest, CancelMiddleOfQueueKeepsFifoOfTheRest) {
  limit(1, 7, SELL, 100, 1);
  limit(2, 7, SELL, 100, 1);
  limit(3, 7, SELL, 100, 1);
  cancel(2, 7);
  EXPECT_EQ(asks(), (Levels{{100, 2, 2}}));
  EXPECT_EQ(limit(4, 8, BUY, 100, 2),
            (Events{Acc(4), Trd(1, 4, 7, 8, 100, 1, BUY, 0, 1),
                    Trd(3, 4, 7, 8, 100, 1, BUY, 0, 0), Done(4, S::FILLED, 2, 0)}));
}

TEST_F(EngineTest, CancelHeadAndTailOfQueue) {
  limit(1, 7, SELL, 100, 1);
  limit(2, 7, SELL, 100, 1);
  limit(3, 7, SELL, 100, 1);
  cancel(1, 7);
  cancel(3, 7);
  limit(4, 7, SELL, 100, 1);  // must queue behind 2
  EXPECT_EQ(limit(5, 8, BUY, 100, 1),
            (Events{Acc(5), Trd(2, 5, 7, 8, 100, 1, BUY, 0, 0), Done(5, S::FILLED, 1, 0)}));
  EXPECT_EQ(asks(), (Levels{{100, 1, 1}}));
}

TEST_F(EngineTest, CancelUnknownOrderIsRejected) {
  EXPECT_EQ(cancel(42, 7), (Events{Rej(42, R::UNKNOWN_ORDER)}));
}

TEST_F(EngineTest, CancelFilledOrderIsRejectedUnknown) {
  limit(1, 7, SELL, 100, 5);
  limit(2, 8, BUY, 100, 5);
  EXPECT_EQ(cancel(1, 7), (Events{Rej(1, R::UNKNOWN_ORDER)}));
  EXPECT_EQ(cancel(2, 8), (Events{Rej(2, R::UNKNOWN_ORDER)}));
}

TEST_F(EngineTest, CancelTwiceIsRejectedUnknown) {
  limit(1, 7, BUY, 100, 5);
  cancel(1, 7);
  EXPECT_EQ(cancel(1, 7), (Events{Rej(1, R::UNKNOWN_ORDER)}));
}

TEST_F(EngineTest, CancelOfIocRemainderIsRejectedUnknown) {
  limit(1, 7, BUY, 100, 5, TimeInForce::IOC);
  EXPECT_EQ(cancel(1, 7), (Events{Rej(1, R::UNKNOWN_ORDER)}));
}

TEST_F(EngineTest, CancelByAnotherAccountLooksUnknownAndLeavesOrder) {
  limit(1, 7, BUY, 100, 5);
  EXPECT_EQ(cancel(1, 8), (Events{Rej(1, R::UNKNOWN_ORDER)}));
  EXPECT_EQ(bids(), (Levels{{100, 5, 1}}));
  ASSERT_TRUE(eng.order(1).has_value());
  EXPECT_EQ(eng.order(1)->remaining, 5);
}

TEST_F(EngineTest, CancelOnWrongSymbolLooksUnknown) {
  limit(1, 7, BUY, 100, 5, TimeInForce::GTC, 1);
  EXPECT_EQ(cancel(1, 7, 2), (Events{Rej(1, R::UNKNOWN_ORDER, 2)}));
  EXPECT_EQ(bids(1), (Levels{{100, 5, 1}}));
}

TEST_F(EngineTest, CancelKeepsOtherLevelsIntact) {
  limit(1, 7, BUY, 100, 1);
  limit(2, 7, BUY, 101, 1);
  limit(3, 7, BUY, 99, 1);
  cancel(1, 7);
  EXPECT_EQ(bids(), (Levels{{101, 1, 1}, {99, 1, 1}}));
}

}  // namespace
}  // namespace bourse::engine::testing
