// Worked examples for modify, self-trade prevention, post-only, instrument
// rules and snapshot/restore: book before, command, events, book after.
#include <stdexcept>

#include "engine_fixture.hpp"

namespace bourse::engine::testing {
namespace {

using S = OrderStatus;
using STP = SelfTradePrevention;
constexpr auto STP_CXL = CancelReason::SELF_TRADE_PREVENTED;

NewOrder Lim(OrderId id, AccountId acct, Side side, Price px, Quantity qty,
             STP stp = STP::CANCEL_INCOMING, bool post_only = false,
             TimeInForce tif = TimeInForce::GTC) {
  return NewOrder{id, acct, kSym, side, OrderType::LIMIT, tif, px, qty, post_only, stp};
}

// ---- modify -----------------------------------------------------------------

TEST_F(EngineTest, ModifyReduceKeepsPriority) {
  limit(1, 7, SELL, 100, 5);
  limit(2, 8, SELL, 100, 5);
  EXPECT_EQ(modify(1, 7, 100, 2), (Events{Mod(1, 100, 2), Done(1, S::NEW, 0, 2)}));
  EXPECT_EQ(asks(), (Levels{{100, 7, 2}}));
  // Order 1 is still first in the queue.
  EXPECT_EQ(limit(3, 9, BUY, 100, 3),
            (Events{Acc(3), Trd(1, 3, 7, 9, 100, 2, BUY, 0, 1),
                    Trd(2, 3, 8, 9, 100, 1, BUY, 4, 0), Done(3, S::FILLED, 3, 0)}));
}

TEST_F(EngineTest, ModifyIncreaseLosesPriority) {
  limit(1, 7, SELL, 100, 5);
  limit(2, 8, SELL, 100, 5);
  EXPECT_EQ(modify(1, 7, 100, 6), (Events{Mod(1, 100, 6), Done(1, S::NEW, 0, 6)}));
  EXPECT_EQ(limit(3, 9, BUY, 100, 5),
            (Events{Acc(3), Trd(2, 3, 8, 9, 100, 5, BUY, 0, 0), Done(3, S::FILLED, 5, 0)}));
  EXPECT_EQ(asks(), (Levels{{100, 6, 1}}));
}

TEST_F(EngineTest, ModifyPriceMovesLevelAndLosesPriority) {
  limit(1, 7, BUY, 99, 5);
  limit(2, 8, BUY, 100, 5);
  EXPECT_EQ(modify(2, 8, 99, 5), (Events{Mod(2, 99, 5), Done(2, S::NEW, 0, 5)}));
  EXPECT_EQ(bids(), (Levels{{99, 10, 2}}));
  EXPECT_EQ(limit(3, 9, SELL, 99, 1),
            (Events{Acc(3), Trd(1, 3, 7, 9, 99, 1, SELL, 4, 0), Done(3, S::FILLED, 1, 0)}));
}

TEST_F(EngineTest, ModifyPriceCanTradeAtOnce) {
  limit(1, 7, SELL, 101, 3);
  limit(2, 8, BUY, 99, 5);
  EXPECT_EQ(modify(2, 8, 101, 5),
            (Events{Mod(2, 101, 5), Trd(1, 2, 7, 8, 101, 3, BUY, 0, 2),
                    Done(2, S::PARTIALLY_FILLED, 3, 2)}));
  EXPECT_EQ(bids(), (Levels{{101, 2, 1}}));
  EXPECT_EQ(asks(), Levels{});
}

TEST_F(EngineTest, ModifyKeepsCumulativeFilled) {
  limit(1, 7, SELL, 100, 10);
  limit(2, 8, BUY, 100, 4);
  EXPECT_EQ(modify(1, 7, 100, 3), (Events{Mod(1, 100, 3), Done(1, S::PARTIALLY_FILLED, 4, 3)}));
  EXPECT_EQ(modify(1, 7, 99, 3), (Events{Mod(1, 99, 3), Done(1, S::PARTIALLY_FILLED, 4, 3)}));
  EXPECT_EQ(eng.order(1)->filled, 4);
}

TEST_F(EngineTest, ModifyUnknownFilledOrForeignIsRejected) {
  limit(1, 7, SELL, 100, 5);
  limit(2, 8, BUY, 100, 5);  // fills 1
  limit(3, 7, SELL, 101, 5);
  EXPECT_EQ(modify(99, 7, 100, 1), (Events{Rej(99, RejectReason::UNKNOWN_ORDER)}));
  EXPECT_EQ(modify(1, 7, 100, 1), (Events{Rej(1, RejectReason::UNKNOWN_ORDER)}));
  EXPECT_EQ(modify(3, 8, 101, 1), (Events{Rej(3, RejectReason::UNKNOWN_ORDER)}));
  EXPECT_EQ(modify(3, 7, 101, 1, /*sym=*/2), (Events{Rej(3, RejectReason::UNKNOWN_ORDER, 2)}));
  EXPECT_EQ(modify(3, 7, 101, 0), (Events{Rej(3, RejectReason::INVALID_QUANTITY)}));
  EXPECT_EQ(modify(3, 7, 0, 1), (Events{Rej(3, RejectReason::INVALID_PRICE)}));
  EXPECT_EQ(asks(), (Levels{{101, 5, 1}}));
}

// ---- self-trade prevention ----------------------------------------------------

TEST_F(EngineTest, StpCancelIncomingIsDefault) {
  limit(1, 7, SELL, 100, 2);
  limit(2, 7, SELL, 101, 2);
  EXPECT_EQ(limit(3, 7, BUY, 101, 3),
            (Events{Acc(3), Cxl(3, 3, STP_CXL), Done(3, S::CANCELLED, 0, 0)}));
  EXPECT_EQ(asks(), (Levels{{100, 2, 1}, {101, 2, 1}}));
  EXPECT_EQ(bids(), Levels{});
}

TEST_F(EngineTest, StpCancelIncomingAfterPartialFill) {
  limit(1, 8, SELL, 100, 2);
  limit(2, 7, SELL, 100, 2);
  limit(3, 8, SELL, 100, 2);
  EXPECT_EQ(limit(4, 7, BUY, 100, 5),
            (Events{Acc(4), Trd(1, 4, 8, 7, 100, 2, BUY, 0, 3), Cxl(4, 3, STP_CXL),
                    Done(4, S::CANCELLED, 2, 0)}));
  EXPECT_EQ(asks(), (Levels{{100, 4, 2}}));
}

TEST_F(EngineTest, StpCancelResting) {
  limit(1, 7, SELL, 100, 2);
  limit(2, 8, SELL, 100, 2);
  EXPECT_EQ(submit(Lim(3, 7, BUY, 100, 3, STP::CANCEL_RESTING)),
            (Events{Acc(3), Cxl(1, 2, STP_CXL), Done(1, S::CANCELLED, 0, 0),
                    Trd(2, 3, 8, 7, 100, 2, BUY, 0, 1), Done(3, S::PARTIALLY_FILLED, 2, 1)}));
  EXPECT_EQ(asks(), Levels{});
  EXPECT_EQ(bids(), (Levels{{100, 1, 1}}));
  EXPECT_FALSE(eng.order(1).has_value());
}

TEST_F(EngineTest, StpCancelBoth) {
  limit(1, 8, SELL, 100, 1);
  limit(2, 7, SELL, 100, 2);
  limit(3, 8, SELL, 100, 2);
  EXPECT_EQ(submit(Lim(4, 7, BUY, 100, 5, STP::CANCEL_BOTH)),
            (Events{Acc(4), Trd(1, 4, 8, 7, 100, 1, BUY, 0, 4), Cxl(2, 2, STP_CXL),
                    Done(2, S::CANCELLED, 0, 0), Cxl(4, 4, STP_CXL),
                    Done(4, S::CANCELLED, 1, 0)}));
  EXPECT_EQ(asks(), (Levels{{100, 2, 1}}));
}

TEST_F(EngineTest, StpFokCountsOnlyReachableLiquidity) {
  limit(1, 7, SELL, 100, 2);
  limit(2, 8, SELL, 100, 5);
  // Own order first: CANCEL_INCOMING would stop at once, so nothing is fillable.
  EXPECT_EQ(submit(Lim(3, 7, BUY, 100, 5, STP::CANCEL_INCOMING, false, TimeInForce::FOK)),
            (Events{Acc(3), Cxl(3, 5, CancelReason::FOK_UNFILLABLE),
                    Done(3, S::CANCELLED, 0, 0)}));
  EXPECT_EQ(asks(), (Levels{{100, 7, 2}}));
  // CANCEL_RESTING skips own orders: 5 are reachable.
  EXPECT_EQ(submit(Lim(4, 7, BUY, 100, 5, STP::CANCEL_RESTING, false, TimeInForce::FOK)),
            (Events{Acc(4), Cxl(1, 2, STP_CXL), Done(1, S::CANCELLED, 0, 0),
                    Trd(2, 4, 8, 7, 100, 5, BUY, 0, 0), Done(4, S::FILLED, 5, 0)}));
}

// ---- post-only ----------------------------------------------------------------

TEST_F(EngineTest, PostOnlyRestsWhenPassive) {
  limit(1, 7, SELL, 101, 2);
  EXPECT_EQ(submit(Lim(2, 8, BUY, 100, 3, STP::CANCEL_INCOMING, true)),
            (Events{Acc(2), Done(2, S::NEW, 0, 3)}));
}

TEST_F(EngineTest, PostOnlyRejectedWhenItWouldTake) {
  limit(1, 7, SELL, 101, 2);
  EXPECT_EQ(submit(Lim(2, 8, BUY, 101, 3, STP::CANCEL_INCOMING, true)),
            (Events{Rej(2, RejectReason::WOULD_TAKE_LIQUIDITY), Done(2, S::REJECTED, 0, 0)}));
  EXPECT_EQ(asks(), (Levels{{101, 2, 1}}));
  // A rejected id is not consumed.
  EXPECT_EQ(limit(2, 8, BUY, 100, 1), (Events{Acc(2), Done(2, S::NEW, 0, 1)}));
}

TEST_F(EngineTest, PostOnlyNeedsLimitGtc) {
  EXPECT_EQ(submit(Lim(1, 8, BUY, 100, 3, STP::CANCEL_INCOMING, true, TimeInForce::IOC)),
            (Events{Rej(1, RejectReason::INVALID_POST_ONLY), Done(1, S::REJECTED, 0, 0)}));
}

TEST_F(EngineTest, PostOnlyModifyThatWouldTakeIsRejected) {
  limit(1, 7, SELL, 101, 2);
  submit(Lim(2, 8, BUY, 100, 3, STP::CANCEL_INCOMING, true));
  EXPECT_EQ(modify(2, 8, 101, 3), (Events{Rej(2, RejectReason::WOULD_TAKE_LIQUIDITY)}));
  EXPECT_EQ(bids(), (Levels{{100, 3, 1}}));
}

TEST_F(EngineTest, InvalidStpModeRejected) {
  EXPECT_EQ(submit(Lim(1, 8, BUY, 100, 3, static_cast<STP>(0))),
            (Events{Rej(1, RejectReason::INVALID_SELF_TRADE_PREVENTION),
                    Done(1, S::REJECTED, 0, 0)}));
}

// ---- instrument rules -----------------------------------------------------------

TEST_F(EngineTest, InstrumentRules) {
  Instrument i;
  i.tick_size = 5;
  i.lot_size = 10;
  i.min_quantity = 20;
  i.max_quantity = 1000;
  i.band_percent = 10;
  i.reference_price = 1000;
  ASSERT_TRUE(eng.set_instrument(kSym, i));
  EXPECT_EQ(limit(1, 7, BUY, 1001, 20)[0], Rej(1, RejectReason::PRICE_NOT_ON_TICK));
  EXPECT_EQ(limit(1, 7, BUY, 1000, 25)[0], Rej(1, RejectReason::QUANTITY_NOT_ON_LOT));
  EXPECT_EQ(limit(1, 7, BUY, 1000, 10)[0], Rej(1, RejectReason::QUANTITY_BELOW_MIN));
  EXPECT_EQ(limit(1, 7, BUY, 1000, 1010)[0], Rej(1, RejectReason::QUANTITY_ABOVE_MAX));
  EXPECT_EQ(limit(1, 7, BUY, 1105, 20)[0], Rej(1, RejectReason::PRICE_OUTSIDE_BAND));
  EXPECT_EQ(limit(1, 7, BUY, 895, 20)[0], Rej(1, RejectReason::PRICE_OUTSIDE_BAND));
  EXPECT_EQ(limit(1, 7, BUY, 900, 20), (Events{Acc(1), Done(1, S::NEW, 0, 20)}));
  EXPECT_EQ(limit(2, 7, BUY, 1100, 20), (Events{Acc(2), Done(2, S::NEW, 0, 20)}));
  // Market orders: lot and size rules apply, price rules do not.
  EXPECT_EQ(market(3, 8, SELL, 15)[0], Rej(3, RejectReason::QUANTITY_NOT_ON_LOT));
  // Modify: a reduce below the minimum is fine; the lot still applies.
  EXPECT_EQ(modify(1, 7, 900, 10), (Events{Mod(1, 900, 10), Done(1, S::NEW, 0, 10)}));
  EXPECT_EQ(modify(1, 7, 900, 5), (Events{Rej(1, RejectReason::QUANTITY_NOT_ON_LOT)}));
  EXPECT_EQ(modify(1, 7, 902, 10), (Events{Rej(1, RejectReason::PRICE_NOT_ON_TICK)}));
  // The band follows the reference price; a pure reduce ignores it.
  ASSERT_TRUE(eng.set_reference_price(kSym, 2000));
  EXPECT_EQ(modify(1, 7, 900, 10), (Events{Mod(1, 900, 10), Done(1, S::NEW, 0, 10)}));
  EXPECT_EQ(modify(1, 7, 905, 10), (Events{Rej(1, RejectReason::PRICE_OUTSIDE_BAND)}));
}

TEST_F(EngineTest, InvalidInstrumentRefused) {
  Instrument i;
  i.tick_size = 0;
  EXPECT_FALSE(eng.set_instrument(kSym, i));
  i = Instrument{};
  i.min_quantity = 10;
  i.max_quantity = 5;
  EXPECT_FALSE(eng.set_instrument(kSym, i));
  EXPECT_FALSE(eng.set_reference_price(kSym, -1));
  EXPECT_EQ(eng.instrument(kSym).tick_size, 1);
}

TEST_F(EngineTest, BandArithmeticDoesNotOverflow) {
  Instrument i;
  i.band_percent = kMaxBandPercent;
  i.reference_price = kMaxPrice;
  ASSERT_TRUE(eng.set_instrument(kSym, i));
  EXPECT_EQ(limit(1, 7, BUY, kMaxPrice, 1), (Events{Acc(1), Done(1, S::NEW, 0, 1)}));
  EXPECT_EQ(limit(2, 7, BUY, 1, 1), (Events{Acc(2), Done(2, S::NEW, 0, 1)}));
}

// ---- L3 and snapshot --------------------------------------------------------

TEST_F(EngineTest, L3InPriorityOrder) {
  limit(1, 7, BUY, 100, 1);
  limit(2, 8, BUY, 101, 2);
  limit(3, 9, BUY, 100, 3);
  std::vector<OrderEntry> b, a;
  eng.l3(kSym, b, a);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_EQ(b[0].order_id, 2u);
  EXPECT_EQ(b[1].order_id, 1u);
  EXPECT_EQ(b[2].order_id, 3u);
  EXPECT_TRUE(a.empty());
}

TEST_F(EngineTest, SnapshotRestoresBookPriorityRulesAndHash) {
  Instrument i;
  i.tick_size = 1;
  i.lot_size = 1;
  i.band_percent = 50;
  i.reference_price = 100;
  eng.set_instrument(kSym, i);
  limit(1, 7, BUY, 100, 5);
  limit(2, 8, BUY, 100, 5);
  submit(Lim(3, 9, SELL, 105, 4, STP::CANCEL_BOTH, true));
  limit(4, 8, SELL, 100, 1);  // partial fill of 1
  limit(5, 9, SELL, 120, 1, TimeInForce::GTC, 2);
  const std::string snap = eng.snapshot();

  EventCollector sink2;
  Engine other(sink2);
  other.restore(snap);
  EXPECT_EQ(other.snapshot(), snap);
  EXPECT_EQ(other.event_hash(), eng.event_hash());
  EXPECT_EQ(other.instrument(kSym).band_percent, 50);
  EXPECT_EQ(other.live_orders(), eng.live_orders());
  EXPECT_EQ(other.order(1)->filled, 1);
  // Same continuation, same events.
  other.submit(NewOrder{6, 9, kSym, SELL, OrderType::LIMIT, TimeInForce::GTC, 100, 6});
  EXPECT_EQ(limit(6, 9, SELL, 100, 6), sink2.events);
  EXPECT_EQ(other.event_hash(), eng.event_hash());
}

TEST_F(EngineTest, RestoreRejectsGarbage) {
  limit(1, 7, BUY, 100, 5);
  std::string snap = eng.snapshot();
  EventCollector sink2;
  Engine other(sink2);
  EXPECT_THROW(other.restore(snap.substr(0, snap.size() - 1)), std::invalid_argument);
  EXPECT_THROW(other.restore("nope"), std::invalid_argument);
  EXPECT_THROW(other.restore(snap + "x"), std::invalid_argument);
  EXPECT_EQ(other.live_orders(), 0u);
  other.restore(snap);
  EXPECT_EQ(other.live_orders(), 1u);
}

}  // namespace
}  // namespace bourse::engine::testing
