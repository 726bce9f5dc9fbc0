// Worked examples for cancel_all(account, symbol?): every resting order of one
// account, in ascending order_id, each cancelled like a user cancel with reason
// MASS_CANCEL. Book before, call, events (and count), book after.
#include "engine_fixture.hpp"

namespace bourse::engine::testing {
namespace {

using S = OrderStatus;
using R = RejectReason;
constexpr auto MASS = CancelReason::MASS_CANCEL;

// Account 7 rests orders 2 (symbol 2), 3, 5 and 9 (symbol 1), placed out of id order;
// account 8 rests order 4 (symbol 1).
class MassCancelTest : public EngineTest {
 protected:
  void two_accounts_two_symbols() {
    limit(5, 7, BUY, 100, 1);
    limit(2, 7, SELL, 200, 3, TimeInForce::GTC, 2);
    limit(9, 7, SELL, 105, 4);
    limit(4, 8, BUY, 100, 6);
    limit(3, 7, BUY, 99, 2);
  }
};

TEST_F(MassCancelTest, CancelsTheAccountsOrdersOnEverySymbolInAscendingId) {
  two_accounts_two_symbols();
  EXPECT_EQ(cancel_all(7), (Events{Cxl(2, 3, MASS, 2), Done(2, S::CANCELLED, 0, 0, 2),
                                   Cxl(3, 2, MASS), Done(3, S::CANCELLED, 0, 0),
                                   Cxl(5, 1, MASS), Done(5, S::CANCELLED, 0, 0),
                                   Cxl(9, 4, MASS), Done(9, S::CANCELLED, 0, 0)}));
  EXPECT_EQ(mass_cancelled, 4u);
  EXPECT_EQ(bids(1), (Levels{{100, 6, 1}}));
  EXPECT_EQ(asks(1), Levels{});
  EXPECT_EQ(asks(2), Levels{});
  EXPECT_EQ(eng.live_orders(), 1u);
}

TEST_F(MassCancelTest, SymbolFilterCancelsOnlyThatSymbol) {
  two_accounts_two_symbols();
  EXPECT_EQ(cancel_all(7, 1), (Events{Cxl(3, 2, MASS), Done(3, S::CANCELLED, 0, 0),
                                      Cxl(5, 1, MASS), Done(5, S::CANCELLED, 0, 0),
                                      Cxl(9, 4, MASS), Done(9, S::CANCELLED, 0, 0)}));
  EXPECT_EQ(mass_cancelled, 3u);
  EXPECT_EQ(bids(1), (Levels{{100, 6, 1}}));
  EXPECT_EQ(asks(2), (Levels{{200, 3, 1}}));  // symbol 2's order stays
  EXPECT_EQ(cancel_all(7, 2), (Events{Cxl(2, 3, MASS, 2), Done(2, S::CANCELLED, 0, 0, 2)}));
  EXPECT_EQ(mass_cancelled, 1u);
}

TEST_F(MassCancelTest, OtherAccountsOrdersStayAndKeepTheirPriority) {
  // One level, accounts interleaved: 1 (8), 2 (7), 3 (8), 4 (7).
  limit(1, 8, SELL, 100, 2);
  limit(2, 7, SELL, 100, 2);
  limit(3, 8, SELL, 100, 2);
  limit(4, 7, SELL, 100, 2);
  limit(5, 7, SELL, 101, 2);
  EXPECT_EQ(cancel_all(7), (Events{Cxl(2, 2, MASS), Done(2, S::CANCELLED, 0, 0),
                                   Cxl(4, 2, MASS), Done(4, S::CANCELLED, 0, 0),
                                   Cxl(5, 2, MASS), Done(5, S::CANCELLED, 0, 0)}));
  EXPECT_EQ(asks(), (Levels{{100, 4, 2}}));
  // Order 1 is still ahead of order 3.
  EXPECT_EQ(limit(10, 9, BUY, 101, 3),
            (Events{Acc(10), Trd(1, 10, 8, 9, 100, 2, BUY, 0, 1), Trd(3, 10, 8, 9, 100, 1, BUY, 1, 0),
                    Done(10, S::FILLED, 3, 0)}));
  EXPECT_EQ(asks(), (Levels{{100, 1, 1}}));
}

TEST_F(MassCancelTest, PartiallyFilledOrderReportsItsFilled) {
  limit(1, 7, SELL, 100, 5);
  limit(2, 8, BUY, 100, 3);  // fills 3 of order 1
  EXPECT_EQ(cancel_all(7), (Events{Cxl(1, 2, MASS), Done(1, S::CANCELLED, 3, 0)}));
  EXPECT_EQ(mass_cancelled, 1u);
  EXPECT_EQ(asks(), Levels{});
}

TEST_F(MassCancelTest, DoneOrdersAreNotCancelledAgain) {
  limit(1, 7, SELL, 100, 2);
  limit(2, 8, BUY, 100, 2);                     // order 1 filled
  limit(3, 7, BUY, 90, 5, TimeInForce::IOC);    // IOC remainder cancelled
  limit(4, 7, BUY, 95, 1);
  cancel(4, 7);                                 // user-cancelled
  limit(5, 7, BUY, 96, 1);
  EXPECT_EQ(cancel_all(7), (Events{Cxl(5, 1, MASS), Done(5, S::CANCELLED, 0, 0)}));
  EXPECT_EQ(mass_cancelled, 1u);
}

TEST_F(MassCancelTest, NothingToCancelIsZeroAndNoEvents) {
  EXPECT_EQ(cancel_all(7), Events{});
  EXPECT_EQ(mass_cancelled, 0u);
  limit(1, 8, BUY, 100, 5);
  EXPECT_EQ(cancel_all(7), Events{});  // only another account's order
  EXPECT_EQ(mass_cancelled, 0u);
  limit(2, 7, BUY, 100, 5, TimeInForce::GTC, 2);
  EXPECT_EQ(cancel_all(7, 1), Events{});  // account 7 rests only on symbol 2
  EXPECT_EQ(mass_cancelled, 0u);
  EXPECT_EQ(cancel_all(7, 42), Events{});  // a symbol never seen
  EXPECT_EQ(eng.symbol_count(), 2u);       // ... gets no book
  EXPECT_EQ(bids(1), (Levels{{100, 5, 1}}));
  EXPECT_EQ(bids(2), (Levels{{100, 5, 1}}));
}

TEST_F(MassCancelTest, CancelledIdsAreUnknownAfterwardsAndStillTaken) {
  limit(1, 7, BUY, 100, 5);
  limit(2, 7, SELL, 110, 5);
  EXPECT_EQ(cancel_all(7).size(), 4u);
  EXPECT_EQ(cancel(1, 7), (Events{Rej(1, R::UNKNOWN_ORDER)}));
  EXPECT_EQ(modify(2, 7, 111, 5), (Events{Rej(2, R::UNKNOWN_ORDER)}));
  EXPECT_FALSE(eng.order(1).has_value());
  EXPECT_EQ(cancel_all(7), Events{});  // a second time: nothing left
  // Like a user cancel: the ids stay in the duplicate window.
  EXPECT_EQ(limit(1, 7, BUY, 100, 5), (Events{Rej(1, R::DUPLICATE_ORDER_ID), Done(1, S::REJECTED, 0, 0)}));
}

TEST_F(MassCancelTest, WorksWhileHalted) {
  two_accounts_two_symbols();
  halt(1);
  EXPECT_EQ(cancel_all(7, 1), (Events{Cxl(3, 2, MASS), Done(3, S::CANCELLED, 0, 0),
                                      Cxl(5, 1, MASS), Done(5, S::CANCELLED, 0, 0),
                                      Cxl(9, 4, MASS), Done(9, S::CANCELLED, 0, 0)}));
  EXPECT_EQ(mass_cancelled, 3u);
  EXPECT_EQ(eng.trading_status(1), TradingStatus::HALTED);  // still halted
  EXPECT_EQ(bids(1), (Levels{{100, 6, 1}}));
}

TEST_F(MassCancelTest, ManyLevelsBothSidesLeaveOnlyTheOtherAccount) {
  // Accounts 7 and 8 alternate over ten bid and ten ask levels, two orders a level.
  OrderId id = 1;
  for (Price p = 0; p < 10; ++p) {
    for (AccountId acct : {7u, 8u}) {
      limit(id++, acct, BUY, 90 - p, 1 + p);
      limit(id++, acct, SELL, 110 + p, 1 + p);
    }
  }
  const Events events = cancel_all(7);
  EXPECT_EQ(mass_cancelled, 20u);
  ASSERT_EQ(events.size(), 40u);
  for (std::size_t k = 0; k + 1 < events.size(); k += 2) {
    EXPECT_EQ(events[k].kind, EventKind::CANCELLED);
    EXPECT_EQ(events[k].reason, static_cast<std::uint8_t>(MASS));
    EXPECT_EQ(events[k + 1].kind, EventKind::DONE);
    EXPECT_EQ(events[k + 1].order_id, events[k].order_id);
    if (k > 0) {
      EXPECT_LT(events[k - 2].order_id, events[k].order_id);  // ascending
    }
  }
  Levels expected_bids, expected_asks;
  for (Price p = 0; p < 10; ++p) {
    expected_bids.emplace_back(90 - p, 1 + p, 1);
    expected_asks.emplace_back(110 + p, 1 + p, 1);
  }
  EXPECT_EQ(bids(), expected_bids);
  EXPECT_EQ(asks(), expected_asks);
  EXPECT_EQ(eng.live_orders(), 20u);
}

TEST_F(MassCancelTest, EventsAreHashedAndSurviveASnapshot) {
  two_accounts_two_symbols();
  EventCollector sink2;
  Engine other(sink2);
  other.restore(eng.snapshot());
  const std::uint64_t before = eng.event_hash();
  cancel_all(7);
  EXPECT_NE(eng.event_hash(), before);
  EXPECT_EQ(other.cancel_all(7, std::nullopt), 4u);
  EXPECT_EQ(sink2.events, sink.events);
  EXPECT_EQ(other.event_hash(), eng.event_hash());
  EXPECT_EQ(other.snapshot(), eng.snapshot());
}

}  // namespace
}  // namespace bourse::engine::testing
