// Worked examples for rejects: malformed commands, limits, duplicate ids.
#include "engine_fixture.hpp"

namespace bourse::engine::testing {
namespace {

using S = OrderStatus;
using R = RejectReason;

Events rejected(OrderId id, R why) { return Events{Rej(id, why), Done(id, S::REJECTED, 0, 0)}; }

TEST_F(EngineTest, RejectsBadEnums) {
  EXPECT_EQ(submit(1, 7, static_cast<Side>(0), OrderType::LIMIT, TimeInForce::GTC, 100, 1),
            rejected(1, R::INVALID_SIDE));
  EXPECT_EQ(submit(2, 7, static_cast<Side>(3), OrderType::LIMIT, TimeInForce::GTC, 100, 1),
            rejected(2, R::INVALID_SIDE));
  EXPECT_EQ(submit(3, 7, BUY, static_cast<OrderType>(3), TimeInForce::GTC, 100, 1),
            rejected(3, R::INVALID_ORDER_TYPE));
  EXPECT_EQ(submit(4, 7, BUY, OrderType::LIMIT, static_cast<TimeInForce>(0), 100, 1),
            rejected(4, R::INVALID_TIME_IN_FORCE));
  EXPECT_EQ(submit(5, 7, BUY, OrderType::LIMIT, static_cast<TimeInForce>(4), 100, 1),
            rejected(5, R::INVALID_TIME_IN_FORCE));
  EXPECT_EQ(bids(), Levels{});
  EXPECT_EQ(eng.symbol_count(), 0u);  // rejects do not create books
}

TEST_F(EngineTest, RejectsQuantityOutOfRange) {
  EXPECT_EQ(limit(1, 7, BUY, 100, 0), rejected(1, R::INVALID_QUANTITY));
  EXPECT_EQ(limit(2, 7, BUY, 100, -5), rejected(2, R::INVALID_QUANTITY));
  EXPECT_EQ(limit(3, 7, BUY, 1, kMaxQuantity + 1), rejected(3, R::INVALID_QUANTITY));
  EXPECT_EQ(limit(4, 7, BUY, 1, INT64_MIN), rejected(4, R::INVALID_QUANTITY));
  EXPECT_EQ(limit(5, 7, BUY, 1, kMaxQuantity), (Events{Acc(5), Done(5, S::NEW, 0, kMaxQuantity)}));
}

TEST_F(EngineTest, RejectsLimitPriceOutOfRange) {
  EXPECT_EQ(limit(1, 7, BUY, 0, 1), rejected(1, R::INVALID_PRICE));
  EXPECT_EQ(limit(2, 7, SELL, -100, 1), rejected(2, R::INVALID_PRICE));
  EXPECT_EQ(limit(3, 7, SELL, kMaxPrice + 1, 1), rejected(3, R::INVALID_PRICE));
  EXPECT_EQ(limit(4, 7, SELL, INT64_MAX, 1), rejected(4, R::INVALID_PRICE));
  EXPECT_EQ(limit(5, 7, SELL, kMaxPrice, 1), (Events{Acc(5), Done(5, S::NEW, 0, 1)}));
}

TEST_F(EngineTest, RejectsMarketWithPrice) {
  EXPECT_EQ(submit(1, 7, BUY, OrderType::MARKET, TimeInForce::IOC, 100, 1),
            rejected(1, R::INVALID_PRICE));
  EXPECT_EQ(submit(2, 7, BUY, OrderType::MARKET, TimeInForce::IOC, -1, 1),
            rejected(2, R::INVALID_PRICE));
}

TEST_F(EngineTest, RejectsNotionalOverflow) {
  // 1e15 * 1e12 does not fit in int64; each factor alone is within limits.
  EXPECT_EQ(limit(1, 7, BUY, kMaxPrice, kMaxQuantity), rejected(1, R::NOTIONAL_OVERFLOW));
  const Quantity q = INT64_MAX / kMaxPrice;  // largest quantity that fits at max price
  EXPECT_EQ(limit(2, 7, BUY, kMaxPrice, q), (Events{Acc(2), Done(2, S::NEW, 0, q)}));
  EXPECT_EQ(limit(3, 7, BUY, kMaxPrice, q + 1), rejected(3, R::NOTIONAL_OVERFLOW));
}

TEST_F(EngineTest, FirstFailingCheckWins) {
  EXPECT_EQ(submit(1, 7, static_cast<Side>(9), static_cast<OrderType>(9),
                   static_cast<TimeInForce>(9), -1, -1),
            rejected(1, R::INVALID_SIDE));
  EXPECT_EQ(limit(2, 7, BUY, -1, -1), rejected(2, R::INVALID_QUANTITY));
}

TEST_F(EngineTest, DuplicateOfLiveOrderIsRejectedAndLeavesOriginal) {
  limit(1, 7, BUY, 100, 5);
  EXPECT_EQ(limit(1, 7, BUY, 101, 9), rejected(1, R::DUPLICATE_ORDER_ID));
  EXPECT_EQ(bids(), (Levels{{100, 5, 1}}));
}

TEST_F(EngineTest, DuplicateOfDoneOrderIsRejected) {
  limit(1, 7, SELL, 100, 5);
  limit(2, 8, BUY, 100, 5);           // fills 1 and 2
  limit(3, 8, BUY, 100, 5, TimeInForce::IOC);  // cancelled remainder
  limit(4, 8, BUY, 100, 5);
  cancel(4, 8);
  for (OrderId id : {1, 2, 3, 4}) {
    EXPECT_EQ(limit(id, 9, SELL, 50, 1), rejected(id, R::DUPLICATE_ORDER_ID)) << id;
  }
}

TEST_F(EngineTest, RejectedIdIsNotConsumed) {
  EXPECT_EQ(limit(1, 7, BUY, 100, 0), rejected(1, R::INVALID_QUANTITY));
  EXPECT_EQ(limit(1, 7, BUY, 100, 1), (Events{Acc(1), Done(1, S::NEW, 0, 1)}));
}

TEST_F(EngineTest, OrderIdZeroAndMaxAreOrdinaryIds) {
  EXPECT_EQ(limit(0, 7, BUY, 100, 1), (Events{Acc(0), Done(0, S::NEW, 0, 1)}));
  EXPECT_EQ(limit(UINT64_MAX, 7, BUY, 100, 1),
            (Events{Acc(UINT64_MAX), Done(UINT64_MAX, S::NEW, 0, 1)}));
  EXPECT_EQ(limit(0, 7, BUY, 100, 1), rejected(0, R::DUPLICATE_ORDER_ID));
  EXPECT_EQ(bids(), (Levels{{100, 2, 2}}));
}

TEST_F(EngineTest, LargeQuantitiesAggregateWithoutWrapping) {
  // Ten max-size orders at price 1: the level total (1e13) and the sweep stay exact.
  for (OrderId id = 1; id <= 10; ++id) limit(id, 7, SELL, 1, kMaxQuantity);
  EXPECT_EQ(asks(), (Levels{{1, 10 * kMaxQuantity, 10}}));
  Events ev = limit(11, 8, BUY, 1, kMaxQuantity, TimeInForce::FOK);
  ASSERT_EQ(ev.size(), 3u);
  EXPECT_EQ(ev[1], Trd(1, 11, 7, 8, 1, kMaxQuantity, BUY, 0, 0));
  EXPECT_EQ(asks(), (Levels{{1, 9 * kMaxQuantity, 9}}));
}

}  // namespace
}  // namespace bourse::engine::testing

// The id window: done ids are refused for `id_window` more done orders, then forgotten;
// a working order's id never is.
namespace bourse::engine::testing {
namespace {

struct WindowedEngine {
  explicit WindowedEngine(std::size_t window) : eng(sink, 16, window) {}
  Events limit(OrderId id, Side side, Price px, Quantity qty, TimeInForce tif = TimeInForce::GTC) {
    sink.events.clear();
    eng.submit(NewOrder{id, 7 + id % 2, kSym, side, OrderType::LIMIT, tif, px, qty});
    return sink.events;
  }
  bool refused(OrderId id) {
    // An IOC sell far from any bid: accepted ids are done at once (and join the window).
    const Events got = limit(id, SELL, 1'000'000, 1, TimeInForce::IOC);
    return got.front().kind == EventKind::REJECTED &&
           got.front().reason == static_cast<std::uint8_t>(RejectReason::DUPLICATE_ORDER_ID);
  }
  EventCollector sink;
  Engine eng;
};

TEST(IdWindow, DoneIdsAreRefusedForTheWindowThenForgotten) {
  WindowedEngine w(2);
  w.limit(1, SELL, 100, 5);           // rests
  w.limit(2, BUY, 100, 5);            // fills 1: done ids [1, 2]
  EXPECT_TRUE(w.refused(1));
  EXPECT_TRUE(w.refused(2));
  w.limit(3, BUY, 90, 1, TimeInForce::IOC);  // nothing to take: done ids [2, 3]
  EXPECT_TRUE(w.refused(2));
  EXPECT_FALSE(w.refused(1));         // forgotten: accepted again (done: [3, 1])
  EXPECT_FALSE(w.refused(2));         // forgotten by that: accepted again
  EXPECT_EQ(w.eng.known_ids(), 2u);
}

TEST(IdWindow, AWorkingOrdersIdIsNeverForgotten) {
  WindowedEngine w(1);
  w.limit(10, BUY, 50, 5);            // rests
  w.limit(11, SELL, 200, 5);          // rests
  w.eng.modify(ModifyOrder{11, 8, kSym, 201, 5});  // re-enters the book under its id
  for (OrderId id = 100; id < 110; ++id) w.limit(id, BUY, 10, 1, TimeInForce::IOC);
  EXPECT_TRUE(w.refused(10));
  EXPECT_TRUE(w.refused(11));
  w.eng.cancel(CancelOrder{10, 7, kSym});  // done now: in the window
  EXPECT_TRUE(w.refused(10));
  w.limit(120, BUY, 10, 1, TimeInForce::IOC);
  EXPECT_FALSE(w.refused(10));
}

// A done order keeps its store node while its id is in the window: it must be
// refused as a duplicate yet be found by nothing else, and once forgotten its node
// serves the next order.
TEST(IdWindow, DoneOrdersInTheWindowAreRefusedButNotFound) {
  WindowedEngine w(3);
  w.limit(1, SELL, 100, 5);                    // rests
  w.limit(2, BUY, 100, 3);                     // 1 is partly filled
  w.limit(4, BUY, 100, 2);                     // 1 is filled: done ids [2, 1, 4]
  EXPECT_FALSE(w.eng.order(1).has_value());
  w.sink.events.clear();
  w.eng.cancel(CancelOrder{1, 8, kSym});
  w.eng.modify(ModifyOrder{1, 8, kSym, 101, 5});
  ASSERT_EQ(w.sink.events.size(), 2u);
  for (const Event& e : w.sink.events) {
    EXPECT_EQ(e.kind, EventKind::REJECTED);
    EXPECT_EQ(e.reason, static_cast<std::uint8_t>(RejectReason::UNKNOWN_ORDER));
  }
  EXPECT_TRUE(w.refused(1));                   // done ids [1, 4, 1'] -- refusals add none

  // A modify that re-enters and fills completely ends its order under the same id.
  w.limit(20, SELL, 100, 5);                   // rests
  w.limit(21, BUY, 90, 5);                     // rests
  w.eng.modify(ModifyOrder{21, 8, kSym, 100, 5});  // trades with 20: done ids [4, 20, 21]
  EXPECT_FALSE(w.eng.order(20).has_value());
  EXPECT_FALSE(w.eng.order(21).has_value());
  EXPECT_TRUE(w.refused(21));
  EXPECT_EQ(w.eng.live_orders(), 0u);

  // Three more done orders push 20 and 21 out: their ids are accepted again, and the
  // nodes they leave hold new resting orders exactly.
  for (OrderId id = 30; id < 33; ++id) w.limit(id, BUY, 10, 1, TimeInForce::IOC);
  w.limit(20, BUY, 95, 7);
  w.limit(21, SELL, 105, 9);
  ASSERT_TRUE(w.eng.order(20).has_value());
  EXPECT_EQ(w.eng.order(20)->remaining, 7);
  EXPECT_EQ(w.eng.order(20)->price, 95);
  EXPECT_EQ(w.eng.order(21)->remaining, 9);
  EXPECT_EQ(w.eng.order(21)->side, SELL);
  EXPECT_EQ(w.eng.live_orders(), 2u);
  EXPECT_EQ(w.eng.known_ids(), 5u);            // 2 working + the window of 3
}

TEST(IdWindow, KnownIdsStayBoundedWhateverTheHistory) {
  WindowedEngine w(1000);
  for (OrderId id = 1; id < 200'000; id += 2) {
    w.limit(id, SELL, 100, 1);
    w.limit(id + 1, BUY, 100, 1);     // fills it
  }
  w.limit(500'000, BUY, 90, 3);       // one resting order
  EXPECT_EQ(w.eng.known_ids(), 1001u);
  EXPECT_EQ(w.eng.live_orders(), 1u);
}

}  // namespace
}  // namespace bourse::engine::testing
