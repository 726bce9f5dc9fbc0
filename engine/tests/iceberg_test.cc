// Worked examples for iceberg orders (NewOrder::display_quantity): validation, what the
// book shows, refreshes to the back of the level, FOK and self-trade prevention seeing
// hidden quantity as matching reaches it, cancel, modify, mass cancel, halts, snapshot
// version 3 (and version 2 still restoring), and batches. Book before, command, events,
// book after; queues are listed as (order_id, shown, hidden) in priority order.
#include <cstring>
#include <random>
#include <set>
#include <string>

#include "engine_fixture.hpp"

namespace bourse::engine::testing {
namespace {

using S = OrderStatus;
using R = RejectReason;
using C = CancelReason;
using Slot = std::tuple<OrderId, Quantity, Quantity>;  // order_id, shown, hidden
using Queue = std::vector<Slot>;
constexpr auto GTC = TimeInForce::GTC;
constexpr auto STP = CancelReason::SELF_TRADE_PREVENTED;

template <class T>
void put(std::string& out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out.append(buf, sizeof(T));
}

template <class T>
T get(const std::string& s, std::size_t at) {
  T v;
  std::memcpy(&v, s.data() + at, sizeof(T));
  return v;
}

template <class T>
void set(std::string& s, std::size_t at, T v) {
  std::memcpy(&s[at], &v, sizeof(T));
}

class IcebergTest : public EngineTest {
 protected:
  Events ice(OrderId id, AccountId acct, Side side, Price px, Quantity qty, Quantity display,
             TimeInForce tif = GTC, OrderType type = OrderType::LIMIT,
             SelfTradePrevention stp = SelfTradePrevention::CANCEL_INCOMING) {
    NewOrder o{id, acct, kSym, side, type, tif, px, qty};
    o.display_quantity = display;
    o.stp = stp;
    return submit(o);
  }
  Events taker(OrderId id, AccountId acct, Side side, Price px, Quantity qty, TimeInForce tif = GTC,
               SelfTradePrevention stp = SelfTradePrevention::CANCEL_INCOMING) {
    NewOrder o{id, acct, kSym, side, OrderType::LIMIT, tif, px, qty};
    o.stp = stp;
    return submit(o);
  }
  static Queue queue_of(const Engine& e, Side s) {
    std::vector<OrderEntry> b, a;
    e.l3(kSym, b, a);
    Queue out;
    for (const OrderEntry& o : s == BUY ? b : a) out.emplace_back(o.order_id, o.remaining, o.hidden);
    return out;
  }
  Queue queue(Side s) const { return queue_of(eng, s); }
  Events rejected(OrderId id, R why) { return Events{Rej(id, why), Done(id, S::REJECTED, 0, 0)}; }
};

// ---- validation ---------------------------------------------------------------

TEST_F(IcebergTest, DisplayMustBeBelowTheQuantityAndPositive) {
  EXPECT_EQ(ice(1, 7, SELL, 100, 10, 10), rejected(1, R::INVALID_DISPLAY_QUANTITY));  // all of it
  EXPECT_EQ(ice(1, 7, SELL, 100, 10, 11), rejected(1, R::INVALID_DISPLAY_QUANTITY));  // more
  EXPECT_EQ(ice(1, 7, SELL, 100, 10, -1), rejected(1, R::INVALID_DISPLAY_QUANTITY));  // negative
  EXPECT_EQ(asks(), Levels{});
  // A refused id is not consumed: the same id is accepted as an iceberg of 10 showing 9.
  EXPECT_EQ(ice(1, 7, SELL, 100, 10, 9), (Events{Acc(1), Done(1, S::NEW, 0, 10)}));
  EXPECT_EQ(asks(), (Levels{{100, 9, 1}}));
}

TEST_F(IcebergTest, OnlyARestingLimitOrderCanBeAnIceberg) {
  limit(1, 8, BUY, 100, 50);  // something they could trade with
  EXPECT_EQ(ice(2, 7, SELL, 100, 10, 2, TimeInForce::IOC), rejected(2, R::INVALID_DISPLAY_QUANTITY));
  EXPECT_EQ(ice(3, 7, SELL, 100, 10, 2, TimeInForce::FOK), rejected(3, R::INVALID_DISPLAY_QUANTITY));
  EXPECT_EQ(ice(4, 7, SELL, 0, 10, 2, TimeInForce::IOC, OrderType::MARKET),
            rejected(4, R::INVALID_DISPLAY_QUANTITY));
  EXPECT_EQ(bids(), (Levels{{100, 50, 1}}));
}

// Order of the checks: validate() (side ... notional), stp mode, post-only, then the
// display quantity; then the halt; then the instrument rules (tick, lot, min, max,
// band), then the display quantity's lot; then the duplicate id; then post-only crossing.
TEST_F(IcebergTest, WhereTheDisplayCheckSitsInTheValidationOrder) {
  EXPECT_EQ(ice(1, 7, SELL, 100, 0, 5), rejected(1, R::INVALID_QUANTITY));
  NewOrder bad_stp{2, 7, kSym, SELL, OrderType::LIMIT, GTC, 100, 10};
  bad_stp.stp = static_cast<SelfTradePrevention>(9);
  bad_stp.display_quantity = 10;
  EXPECT_EQ(submit(bad_stp), rejected(2, R::INVALID_SELF_TRADE_PREVENTION));
  NewOrder post_ioc{3, 7, kSym, SELL, OrderType::LIMIT, TimeInForce::IOC, 100, 10};
  post_ioc.post_only = true;
  post_ioc.display_quantity = 2;
  EXPECT_EQ(submit(post_ioc), rejected(3, R::INVALID_POST_ONLY));  // post-only is checked first

  Instrument lots;
  lots.lot_size = 5;
  ASSERT_TRUE(eng.set_instrument(kSym, lots));
  EXPECT_EQ(ice(4, 7, SELL, 100, 22, 5), rejected(4, R::QUANTITY_NOT_ON_LOT));  // quantity first
  EXPECT_EQ(ice(4, 7, SELL, 100, 20, 3), rejected(4, R::INVALID_DISPLAY_QUANTITY));  // slice off the lot
  EXPECT_EQ(ice(4, 7, SELL, 100, 20, 5), (Events{Acc(4), Done(4, S::NEW, 0, 20)}));
  EXPECT_EQ(ice(4, 7, SELL, 100, 20, 5), rejected(4, R::DUPLICATE_ORDER_ID));

  halt();
  // Malformed in itself: its own reason even while halted; off the lot: the halt wins.
  EXPECT_EQ(ice(5, 7, SELL, 100, 20, 20), rejected(5, R::INVALID_DISPLAY_QUANTITY));
  EXPECT_EQ(ice(5, 7, SELL, 100, 20, 3), rejected(5, R::INSTRUMENT_HALTED));
  EXPECT_EQ(ice(5, 7, SELL, 100, 20, 5), rejected(5, R::INSTRUMENT_HALTED));
  resume();

  // A post-only iceberg is fine, and is refused for crossing like any post-only order.
  limit(6, 8, BUY, 95, 5);
  NewOrder post{7, 7, kSym, SELL, OrderType::LIMIT, GTC, 95, 10};
  post.post_only = true;
  post.display_quantity = 5;
  EXPECT_EQ(submit(post), rejected(7, R::WOULD_TAKE_LIQUIDITY));
  post.price = 96;
  EXPECT_EQ(submit(post), (Events{Acc(7), Done(7, S::NEW, 0, 10)}));
}

// ---- what the book shows ----------------------------------------------------------

TEST_F(IcebergTest, TheBookShowsOnlyTheSlice) {
  EXPECT_EQ(ice(1, 7, SELL, 100, 10, 4), (Events{Acc(1), Done(1, S::NEW, 0, 10)}));  // leaves: all 10
  limit(2, 8, SELL, 100, 3);
  EXPECT_EQ(asks(), (Levels{{100, 7, 2}}));  // 4 of the iceberg + 3
  EXPECT_EQ(eng.top(kSym).ask->quantity, 7);
  EXPECT_EQ(queue(SELL), (Queue{{1, 4, 6}, {2, 3, 0}}));
  std::vector<OrderEntry> b, a;
  eng.l3(kSym, b, a);
  EXPECT_EQ(a[0].display_quantity, 4);
  EXPECT_EQ(a[1].display_quantity, 0);
  const OrderView o = *eng.order(1);
  EXPECT_EQ(std::make_tuple(o.remaining, o.visible, o.display_quantity), std::make_tuple(10, 4, 4));
}

TEST_F(IcebergTest, OnArrivalItTradesWithItsWholeQuantityThenShowsASlice) {
  limit(1, 8, SELL, 100, 5);
  limit(2, 8, SELL, 101, 3);
  EXPECT_EQ(ice(3, 7, BUY, 101, 12, 2),
            (Events{Acc(3), Trd(1, 3, 8, 7, 100, 5, BUY, 0, 7), Trd(2, 3, 8, 7, 101, 3, BUY, 0, 4),
                    Done(3, S::PARTIALLY_FILLED, 8, 4)}));
  EXPECT_EQ(queue(BUY), (Queue{{3, 2, 2}}));
  EXPECT_EQ(bids(), (Levels{{101, 2, 1}}));
  // What is left after arrival may be less than the display: all shown, nothing hidden.
  cancel(3, 7);
  limit(4, 8, SELL, 99, 5);
  EXPECT_EQ(ice(5, 7, BUY, 99, 7, 4),
            (Events{Acc(5), Trd(4, 5, 8, 7, 99, 5, BUY, 0, 2), Done(5, S::PARTIALLY_FILLED, 5, 2)}));
  EXPECT_EQ(queue(BUY), (Queue{{5, 2, 0}}));
  EXPECT_EQ(eng.order(5)->display_quantity, 4);
}

// ---- refresh ------------------------------------------------------------------------

TEST_F(IcebergTest, AFilledSliceIsRefreshedAtTheBackOfTheLevel) {
  ice(1, 7, SELL, 100, 10, 4);
  limit(2, 8, SELL, 100, 3);
  // The taker fills the slice exactly: 1 shows its next 4 behind order 2.
  EXPECT_EQ(taker(3, 9, BUY, 100, 4),
            (Events{Acc(3), Trd(1, 3, 7, 9, 100, 4, BUY, 6, 0), Done(3, S::FILLED, 4, 0)}));
  EXPECT_EQ(queue(SELL), (Queue{{2, 3, 0}, {1, 4, 2}}));
  EXPECT_EQ(asks(), (Levels{{100, 7, 2}}));
  // Order 2 is now first. A slice partly filled is not refreshed: 1 shows 2, hides 2.
  EXPECT_EQ(taker(4, 9, BUY, 100, 5),
            (Events{Acc(4), Trd(2, 4, 8, 9, 100, 3, BUY, 0, 2), Trd(1, 4, 7, 9, 100, 2, BUY, 4, 0),
                    Done(4, S::FILLED, 5, 0)}));
  EXPECT_EQ(queue(SELL), (Queue{{1, 2, 2}}));
  EXPECT_EQ(asks(), (Levels{{100, 2, 1}}));
}

// One taker sweeps a level holding an iceberg and an ordinary order: slice, the
// ordinary order (now ahead), the refreshed slice, the last (smaller) slice, then the
// next level.
TEST_F(IcebergTest, ALargeTakerSweepsTheLevelThroughItsRefreshes) {
  ice(1, 7, SELL, 100, 10, 4);
  limit(2, 8, SELL, 100, 3);
  limit(5, 8, SELL, 101, 5);
  EXPECT_EQ(taker(3, 9, BUY, 101, 16),
            (Events{Acc(3),
                    Trd(1, 3, 7, 9, 100, 4, BUY, 6, 12),  // slice 1; refreshed behind order 2
                    Trd(2, 3, 8, 9, 100, 3, BUY, 0, 9),
                    Trd(1, 3, 7, 9, 100, 4, BUY, 2, 5),   // slice 2; refreshed: 2 left, shown
                    Trd(1, 3, 7, 9, 100, 2, BUY, 0, 3),   // slice 3: the last, smaller
                    Trd(5, 3, 8, 9, 101, 3, BUY, 2, 0), Done(3, S::FILLED, 16, 0)}));
  EXPECT_EQ(asks(), (Levels{{101, 2, 1}}));
  EXPECT_FALSE(eng.order(1).has_value());
}

TEST_F(IcebergTest, TheLastSliceIsWhatIsLeftWhenHiddenIsBelowTheDisplay) {
  ice(1, 7, BUY, 100, 9, 4);
  EXPECT_EQ(queue(BUY), (Queue{{1, 4, 5}}));
  EXPECT_EQ(taker(2, 8, SELL, 100, 4),
            (Events{Acc(2), Trd(1, 2, 7, 8, 100, 4, SELL, 5, 0), Done(2, S::FILLED, 4, 0)}));
  EXPECT_EQ(queue(BUY), (Queue{{1, 4, 1}}));
  EXPECT_EQ(taker(3, 8, SELL, 100, 4),
            (Events{Acc(3), Trd(1, 3, 7, 8, 100, 4, SELL, 1, 0), Done(3, S::FILLED, 4, 0)}));
  EXPECT_EQ(queue(BUY), (Queue{{1, 1, 0}}));  // hidden 1 < display 4: the last slice is 1
  EXPECT_EQ(bids(), (Levels{{100, 1, 1}}));
  EXPECT_EQ(taker(4, 8, SELL, 100, 5),
            (Events{Acc(4), Trd(1, 4, 7, 8, 100, 1, SELL, 0, 4), Done(4, S::PARTIALLY_FILLED, 1, 4)}));
  EXPECT_EQ(bids(), Levels{});
  EXPECT_EQ(asks(), (Levels{{100, 4, 1}}));
}

// ---- FOK and self-trade prevention ---------------------------------------------------

TEST_F(IcebergTest, FokCountsHiddenQuantity) {
  ice(1, 7, SELL, 100, 10, 2);
  limit(2, 8, SELL, 101, 3);
  EXPECT_EQ(asks(), (Levels{{100, 2, 1}, {101, 3, 1}}));  // 5 shown, 13 fillable
  EXPECT_EQ(taker(3, 9, BUY, 101, 14, TimeInForce::FOK),
            (Events{Acc(3), Cxl(3, 14, C::FOK_UNFILLABLE), Done(3, S::CANCELLED, 0, 0)}));
  EXPECT_EQ(taker(4, 9, BUY, 101, 13, TimeInForce::FOK),
            (Events{Acc(4), Trd(1, 4, 7, 9, 100, 2, BUY, 8, 11), Trd(1, 4, 7, 9, 100, 2, BUY, 6, 9),
                    Trd(1, 4, 7, 9, 100, 2, BUY, 4, 7), Trd(1, 4, 7, 9, 100, 2, BUY, 2, 5),
                    Trd(1, 4, 7, 9, 100, 2, BUY, 0, 3), Trd(2, 4, 8, 9, 101, 3, BUY, 0, 0),
                    Done(4, S::FILLED, 13, 0)}));
  EXPECT_EQ(asks(), Levels{});
}

// A refreshed slice goes behind the taker's own order, where CANCEL_INCOMING stops the
// match: FOK counts only the slices ahead of it. CANCEL_RESTING removes the own order
// and reaches all the hidden quantity.
TEST_F(IcebergTest, FokStopsWhereMatchingWouldStop) {
  ice(1, 7, SELL, 100, 10, 2);
  limit(2, 9, SELL, 100, 3);  // the taker's own
  limit(3, 8, SELL, 100, 3);
  EXPECT_EQ(taker(4, 9, BUY, 100, 3, TimeInForce::FOK),  // 2 before its own order 2
            (Events{Acc(4), Cxl(4, 3, C::FOK_UNFILLABLE), Done(4, S::CANCELLED, 0, 0)}));
  EXPECT_EQ(queue(SELL), (Queue{{1, 2, 8}, {2, 3, 0}, {3, 3, 0}}));  // untouched
  EXPECT_EQ(taker(5, 9, BUY, 100, 2, TimeInForce::FOK),
            (Events{Acc(5), Trd(1, 5, 7, 9, 100, 2, BUY, 8, 0), Done(5, S::FILLED, 2, 0)}));
  EXPECT_EQ(queue(SELL), (Queue{{2, 3, 0}, {3, 3, 0}, {1, 2, 6}}));
  const auto resting = SelfTradePrevention::CANCEL_RESTING;
  EXPECT_EQ(taker(6, 9, BUY, 100, 12, TimeInForce::FOK, resting),  // 3 + 8 = 11
            (Events{Acc(6), Cxl(6, 12, C::FOK_UNFILLABLE), Done(6, S::CANCELLED, 0, 0)}));
  EXPECT_EQ(taker(7, 9, BUY, 100, 11, TimeInForce::FOK, resting),
            (Events{Acc(7), Cxl(2, 3, STP), Done(2, S::CANCELLED, 0, 0),
                    Trd(3, 7, 8, 9, 100, 3, BUY, 0, 8), Trd(1, 7, 7, 9, 100, 2, BUY, 6, 6),
                    Trd(1, 7, 7, 9, 100, 2, BUY, 4, 4), Trd(1, 7, 7, 9, 100, 2, BUY, 2, 2),
                    Trd(1, 7, 7, 9, 100, 2, BUY, 0, 0), Done(7, S::FILLED, 11, 0)}));
  EXPECT_EQ(asks(), Levels{});
}

TEST_F(IcebergTest, SelfTradePreventionWithAnIcebergMakerOfTheSameAccount) {
  ice(1, 7, SELL, 100, 10, 2);
  // CANCEL_INCOMING: the taker's remainder is cancelled; the iceberg keeps all of it.
  EXPECT_EQ(taker(2, 7, BUY, 100, 3),
            (Events{Acc(2), Cxl(2, 3, STP), Done(2, S::CANCELLED, 0, 0)}));
  EXPECT_EQ(queue(SELL), (Queue{{1, 2, 8}}));
  // After a refresh the taker meets its own order first.
  limit(3, 9, SELL, 100, 3);
  EXPECT_EQ(taker(4, 9, BUY, 100, 5),
            (Events{Acc(4), Trd(1, 4, 7, 9, 100, 2, BUY, 8, 3), Cxl(4, 3, STP),
                    Done(4, S::CANCELLED, 2, 0)}));
  EXPECT_EQ(queue(SELL), (Queue{{3, 3, 0}, {1, 2, 6}}));
  // CANCEL_RESTING: the iceberg is cancelled whole (8: shown and hidden).
  EXPECT_EQ(taker(5, 7, BUY, 100, 4, GTC, SelfTradePrevention::CANCEL_RESTING),
            (Events{Acc(5), Trd(3, 5, 9, 7, 100, 3, BUY, 0, 1), Cxl(1, 8, STP), Done(1, S::CANCELLED, 2, 0),
                    Done(5, S::PARTIALLY_FILLED, 3, 1)}));
  EXPECT_EQ(asks(), Levels{});
  EXPECT_EQ(bids(), (Levels{{100, 1, 1}}));
}

// ---- cancel, modify, mass cancel, halt -------------------------------------------------

TEST_F(IcebergTest, CancelCancelsShownAndHidden) {
  ice(1, 7, BUY, 100, 10, 3);
  EXPECT_EQ(taker(2, 8, SELL, 100, 2),
            (Events{Acc(2), Trd(1, 2, 7, 8, 100, 2, SELL, 8, 0), Done(2, S::FILLED, 2, 0)}));
  EXPECT_EQ(queue(BUY), (Queue{{1, 1, 7}}));
  EXPECT_EQ(cancel(1, 7), (Events{Cxl(1, 8, C::USER), Done(1, S::CANCELLED, 2, 0)}));
  EXPECT_EQ(bids(), Levels{});
  EXPECT_EQ(eng.live_orders(), 0u);
  EXPECT_EQ(cancel(1, 7), (Events{Rej(1, R::UNKNOWN_ORDER)}));
}

// Same price, quantity <= leaves: in place, priority kept; hidden quantity goes first,
// then shown. The shown slice never grows in place.
TEST_F(IcebergTest, ModifyReduceTakesHiddenFirstAndKeepsPriority) {
  ice(1, 7, SELL, 100, 10, 4);
  limit(2, 8, SELL, 100, 3);
  EXPECT_EQ(modify(1, 7, 100, 8), (Events{Mod(1, 100, 8), Done(1, S::NEW, 0, 8)}));
  EXPECT_EQ(queue(SELL), (Queue{{1, 4, 4}, {2, 3, 0}}));  // hidden 6 -> 4
  EXPECT_EQ(modify(1, 7, 100, 3), (Events{Mod(1, 100, 3), Done(1, S::NEW, 0, 3)}));
  EXPECT_EQ(queue(SELL), (Queue{{1, 3, 0}, {2, 3, 0}}));  // hidden gone, then 1 of the 4 shown
  EXPECT_EQ(asks(), (Levels{{100, 6, 2}}));
  EXPECT_EQ(taker(3, 9, BUY, 100, 3),  // still first
            (Events{Acc(3), Trd(1, 3, 7, 9, 100, 3, BUY, 0, 0), Done(3, S::FILLED, 3, 0)}));

  // A slice partly filled: 1 shown, 6 hidden; down to 3 takes 4 of the hidden.
  ice(5, 7, BUY, 90, 10, 4);
  taker(6, 8, SELL, 90, 3);
  EXPECT_EQ(queue(BUY), (Queue{{5, 1, 6}}));
  EXPECT_EQ(modify(5, 7, 90, 3), (Events{Mod(5, 90, 3), Done(5, S::PARTIALLY_FILLED, 3, 3)}));
  EXPECT_EQ(queue(BUY), (Queue{{5, 1, 2}}));
  EXPECT_EQ(bids(), (Levels{{90, 1, 1}}));
}

// Otherwise cancel-replace: it re-enters as an incoming iceberg with its display
// quantity, may trade at once with all of it, and shows min(display, what rests).
TEST_F(IcebergTest, ModifyCancelReplaceKeepsTheDisplayQuantity) {
  ice(1, 7, SELL, 101, 10, 4);
  limit(2, 8, SELL, 100, 3);
  EXPECT_EQ(modify(1, 7, 100, 9), (Events{Mod(1, 100, 9), Done(1, S::NEW, 0, 9)}));
  EXPECT_EQ(queue(SELL), (Queue{{2, 3, 0}, {1, 4, 5}}));  // behind order 2
  limit(3, 8, BUY, 99, 2);
  EXPECT_EQ(modify(1, 7, 99, 9),
            (Events{Mod(1, 99, 9), Trd(3, 1, 8, 7, 99, 2, SELL, 0, 7), Done(1, S::PARTIALLY_FILLED, 2, 7)}));
  EXPECT_EQ(queue(SELL), (Queue{{1, 4, 3}, {2, 3, 0}}));
  EXPECT_EQ(asks(), (Levels{{99, 4, 1}, {100, 3, 1}}));
  // More than the leaves at the same price: cancel-replace too.
  EXPECT_EQ(modify(1, 7, 99, 12), (Events{Mod(1, 99, 12), Done(1, S::PARTIALLY_FILLED, 2, 12)}));
  EXPECT_EQ(queue(SELL), (Queue{{1, 4, 8}, {2, 3, 0}}));
  // Down to the display or less: all of it shown, none hidden; still an iceberg of 4.
  EXPECT_EQ(modify(1, 7, 100, 3), (Events{Mod(1, 100, 3), Done(1, S::PARTIALLY_FILLED, 2, 3)}));
  EXPECT_EQ(queue(SELL), (Queue{{2, 3, 0}, {1, 3, 0}}));
  EXPECT_EQ(eng.order(1)->display_quantity, 4);
  EXPECT_EQ(modify(1, 7, 101, 9), (Events{Mod(1, 101, 9), Done(1, S::PARTIALLY_FILLED, 2, 9)}));
  EXPECT_EQ(queue(SELL), (Queue{{2, 3, 0}, {1, 4, 5}}));
}

TEST_F(IcebergTest, MassCancelCancelsIcebergsWhole) {
  limit(1, 7, BUY, 98, 2);
  ice(3, 7, SELL, 100, 10, 2);
  limit(2, 8, SELL, 100, 4);
  EXPECT_EQ(taker(4, 9, BUY, 100, 2),
            (Events{Acc(4), Trd(3, 4, 7, 9, 100, 2, BUY, 8, 0), Done(4, S::FILLED, 2, 0)}));
  EXPECT_EQ(queue(SELL), (Queue{{2, 4, 0}, {3, 2, 6}}));
  EXPECT_EQ(cancel_all(7), (Events{Cxl(1, 2, C::MASS_CANCEL), Done(1, S::CANCELLED, 0, 0),
                                   Cxl(3, 8, C::MASS_CANCEL), Done(3, S::CANCELLED, 2, 0)}));
  EXPECT_EQ(mass_cancelled, 2u);
  EXPECT_EQ(asks(), (Levels{{100, 4, 1}}));
  EXPECT_EQ(bids(), Levels{});
}

TEST_F(IcebergTest, AHaltLeavesAnIcebergAsItWas) {
  ice(1, 7, SELL, 100, 10, 2);
  halt();
  EXPECT_EQ(ice(2, 8, SELL, 100, 10, 2), rejected(2, R::INSTRUMENT_HALTED));
  EXPECT_EQ(modify(1, 7, 100, 5), (Events{Rej(1, R::INSTRUMENT_HALTED)}));
  EXPECT_EQ(queue(SELL), (Queue{{1, 2, 8}}));
  resume();
  EXPECT_EQ(taker(3, 9, BUY, 100, 3),
            (Events{Acc(3), Trd(1, 3, 7, 9, 100, 2, BUY, 8, 1), Trd(1, 3, 7, 9, 100, 1, BUY, 7, 0),
                    Done(3, S::FILLED, 3, 0)}));
  halt();
  EXPECT_EQ(cancel(1, 7), (Events{Cxl(1, 7, C::USER), Done(1, S::CANCELLED, 3, 0)}));
}

// ---- snapshot ------------------------------------------------------------------------

// Header 20 bytes; the book: symbol 4, instrument 48, status 1, last trade price 8; BUY
// count 4 (0 orders), SELL count 4; then 58 bytes per order; then the two stop counts.
constexpr std::size_t kFirstOrder = 20 + 61 + 4 + 4;
constexpr std::size_t kStopCounts = 8;
constexpr std::size_t kOrderBytes = 58;
// Offsets within an order: id 0, account 8, price 16, remaining 24, filled 32, stp 40,
// post_only 41, display_quantity 42, visible 50.
constexpr std::size_t kRemaining = 24, kFilled = 32, kDisplay = 42, kVisible = 50;

class IcebergSnapshotTest : public IcebergTest {
 protected:
  // Order 2 (ordinary, 2 left) ahead of iceberg 1 (10, display 4: 4 filled, refreshed
  // to the back, showing 4 and hiding 2).
  void mid_refresh() {
    ice(1, 7, SELL, 100, 10, 4);
    limit(2, 8, SELL, 100, 3);
    EXPECT_EQ(taker(3, 9, BUY, 100, 5),
              (Events{Acc(3), Trd(1, 3, 7, 9, 100, 4, BUY, 6, 1), Trd(2, 3, 8, 9, 100, 1, BUY, 2, 0),
                      Done(3, S::FILLED, 5, 0)}));
    EXPECT_EQ(queue(SELL), (Queue{{2, 2, 0}, {1, 4, 2}}));
  }
};

TEST_F(IcebergSnapshotTest, SnapshotRoundTripsAnIcebergMidRefresh) {
  mid_refresh();
  const std::string snap = eng.snapshot();
  ASSERT_EQ(snap.size(), kFirstOrder + 2 * kOrderBytes + kStopCounts);
  EXPECT_EQ(get<std::uint32_t>(snap, 4), 4u);
  const std::size_t o2 = kFirstOrder, o1 = kFirstOrder + kOrderBytes;  // priority order
  EXPECT_EQ(get<std::uint64_t>(snap, o2), 2u);
  EXPECT_EQ(get<std::int64_t>(snap, o2 + kRemaining), 2);
  EXPECT_EQ(get<std::int64_t>(snap, o2 + kDisplay), 0);
  EXPECT_EQ(get<std::int64_t>(snap, o2 + kVisible), 2);
  EXPECT_EQ(get<std::uint64_t>(snap, o1), 1u);
  EXPECT_EQ(get<std::int64_t>(snap, o1 + kRemaining), 6);  // leaves: shown 4 + hidden 2
  EXPECT_EQ(get<std::int64_t>(snap, o1 + kFilled), 4);
  EXPECT_EQ(get<std::int64_t>(snap, o1 + kDisplay), 4);
  EXPECT_EQ(get<std::int64_t>(snap, o1 + kVisible), 4);

  EventCollector sink2;
  Engine other(sink2);
  other.restore(snap);
  EXPECT_EQ(other.snapshot(), snap);
  EXPECT_EQ(queue_of(other, SELL), (Queue{{2, 2, 0}, {1, 4, 2}}));
  EXPECT_EQ(other.event_hash(), eng.event_hash());
  // Both go on alike: order 2, the slice, the refreshed last slice of 2.
  const Events expected{Acc(4), Trd(2, 4, 8, 9, 100, 2, BUY, 0, 6), Trd(1, 4, 7, 9, 100, 4, BUY, 2, 2),
                        Trd(1, 4, 7, 9, 100, 2, BUY, 0, 0), Done(4, S::FILLED, 8, 0)};
  EXPECT_EQ(taker(4, 9, BUY, 100, 8), expected);
  other.submit(NewOrder{4, 9, kSym, BUY, OrderType::LIMIT, GTC, 100, 8});
  EXPECT_EQ(sink2.events, expected);
  EXPECT_EQ(other.event_hash(), eng.event_hash());
}

TEST_F(IcebergSnapshotTest, RestoreChecksTheIcebergFields) {
  mid_refresh();
  const std::string good = eng.snapshot();
  const std::size_t o2 = kFirstOrder, o1 = kFirstOrder + kOrderBytes;
  struct Change {
    std::size_t at;
    std::int64_t value;
  };
  for (const Change c : {Change{o1 + kDisplay, -1},     // negative display
                         Change{o1 + kVisible, 0},      // nothing shown
                         Change{o1 + kVisible, 7},      // more shown than its leaves (6)
                         Change{o1 + kVisible, 5},      // more shown than its display (4)
                         Change{o2 + kVisible, 1},      // an ordinary order shows all of it
                         Change{o2 + kDisplay, 1}}) {   // display 1, but 2 shown
    std::string bad = good;
    set<std::int64_t>(bad, c.at, c.value);
    EventCollector sink2;
    Engine other(sink2);
    try {
      other.restore(bad);
      ADD_FAILURE() << "restored " << c.value << " at " << c.at;
    } catch (const std::invalid_argument& e) {
      EXPECT_STREQ(e.what(), "snapshot: invalid iceberg");
    }
    EXPECT_EQ(other.live_orders(), 0u);
  }
  // Valid: a slice partly filled (1 of 4 shown, 5 hidden); an iceberg with no hidden.
  std::string partly = good;
  set<std::int64_t>(partly, o1 + kVisible, 1);
  set<std::int64_t>(partly, o2 + kDisplay, 2);
  EventCollector sink2;
  Engine other(sink2);
  other.restore(partly);
  EXPECT_EQ(queue_of(other, SELL), (Queue{{2, 2, 0}, {1, 1, 5}}));
  EXPECT_EQ(other.order(2)->display_quantity, 2);
  EXPECT_EQ(other.snapshot(), partly);
}

TEST_F(IcebergSnapshotTest, AHandBuiltVersion2SnapshotStillRestores) {
  std::string v2("BRSE", 4);
  put<std::uint32_t>(v2, 2);
  put<std::uint64_t>(v2, 0x99);
  put<std::uint32_t>(v2, 1);  // one book
  put<std::uint32_t>(v2, kSym);
  for (std::int64_t v : {std::int64_t{1}, std::int64_t{1}, std::int64_t{1}, kMaxQuantity, std::int64_t{0},
                         std::int64_t{0}}) {
    put<std::int64_t>(v2, v);
  }
  put<std::uint8_t>(v2, 1);    // TRADING
  put<std::uint32_t>(v2, 2);   // BUY: two orders, 42 bytes each
  for (OrderId id : {10u, 11u}) {
    put<std::uint64_t>(v2, id);
    put<std::uint64_t>(v2, 7);
    put<std::int64_t>(v2, 100);
    put<std::int64_t>(v2, 5);  // remaining
    put<std::int64_t>(v2, 1);  // filled
    put<std::uint8_t>(v2, 1);
    put<std::uint8_t>(v2, 0);
  }
  put<std::uint32_t>(v2, 0);  // SELL: none
  eng.restore(v2);
  EXPECT_EQ(eng.event_hash(), 0x99u);
  EXPECT_EQ(queue(BUY), (Queue{{10, 5, 0}, {11, 5, 0}}));  // ordinary orders, shown whole
  EXPECT_EQ(bids(), (Levels{{100, 10, 2}}));
  // Written back as version 4: per order display and shown (two i64), per book the last
  // trade price (i64) and the two stop counts.
  const std::string v4 = eng.snapshot();
  EXPECT_EQ(v4.size(), v2.size() + 2 * 16 + 8 + kStopCounts);
  EXPECT_EQ(get<std::uint32_t>(v4, 4), 4u);
  EXPECT_EQ(get<std::int64_t>(v4, kFirstOrder - 4 + kDisplay), 0);  // BUY side: its count is 4 bytes earlier
  EXPECT_EQ(get<std::int64_t>(v4, kFirstOrder - 4 + kVisible), 5);
}

// ---- batch ---------------------------------------------------------------------------

using Command = Engine::Command;

// A stream over two symbols in which a third of the resting limit orders are icebergs
// (some with invalid display quantities), with takers big enough to refresh them,
// cancels and modifies (in place and cancel-replace).
std::vector<Command> iceberg_stream(std::size_t count, std::uint64_t seed, std::set<OrderId>& icebergs) {
  std::mt19937_64 rng(seed);
  std::vector<Command> out;
  OrderId next_id = 1;
  for (std::size_t i = 0; i < count; ++i) {
    const SymbolId sym = 1 + static_cast<SymbolId>(rng() % 2);
    const Side side = rng() % 2 ? Side::BUY : Side::SELL;
    const Price px = 1000 + static_cast<Price>(rng() % 10) - (side == Side::BUY ? 6 : 4);
    NewOrder o{0, 1 + rng() % 5, sym, side, OrderType::LIMIT, TimeInForce::GTC, px,
               static_cast<Quantity>(1 + rng() % 30)};
    const unsigned r = static_cast<unsigned>(rng() % 100);
    if (r < 60) {
      o.order_id = next_id++;
      if (r < 20 && o.quantity > 1) {
        o.display_quantity = 1 + static_cast<Quantity>(rng() % static_cast<std::uint64_t>(o.quantity - 1));
        if (r == 0) o.display_quantity = o.quantity;  // invalid
        icebergs.insert(o.order_id);
      }
      if (r >= 50 && r < 55) o.tif = TimeInForce::IOC;
      if (r >= 55) o.tif = TimeInForce::FOK, o.quantity *= 2;
      out.push_back(Command{Command::Op::SUBMIT, o});
    } else {
      o.order_id = 1 + rng() % (next_id + 2);
      out.push_back(Command{r < 75 ? Command::Op::CANCEL : Command::Op::MODIFY, o});
    }
  }
  return out;
}

TEST(IcebergBatch, RunsExactlyAsOneCallPerCommand) {
  for (std::uint64_t seed = 1; seed <= 3; ++seed) {
    std::set<OrderId> icebergs;
    const std::vector<Command> cmds = iceberg_stream(20'000, seed, icebergs);
    EventCollector one_sink, batch_sink;
    Engine one(one_sink, 16, 500), batched(batch_sink, 16, 500);
    expect_batches_run_as_single_calls(cmds, 29, one, one_sink, batched, batch_sink, "seed " + std::to_string(seed));
    // Icebergs did trade as makers, one taker often meeting the same one twice (a refresh).
    std::size_t iceberg_fills = 0, refreshed = 0;
    const Event* prev = nullptr;
    for (const Event& e : one_sink.events) {
      if (e.kind == EventKind::TRADE && icebergs.count(e.maker_order_id) != 0) {
        ++iceberg_fills;
        if (prev != nullptr && prev->kind == EventKind::TRADE && prev->order_id == e.order_id &&
            prev->maker_order_id == e.maker_order_id) {
          ++refreshed;
        }
      }
      prev = &e;
    }
    EXPECT_GT(iceberg_fills, 500u) << "seed " << seed;
    EXPECT_GT(refreshed, 20u) << "seed " << seed;
    // And the restored engine goes on exactly alike.
    EventCollector restored_sink;
    Engine restored(restored_sink, 16, 500);
    restored.restore(one.snapshot());
    EXPECT_EQ(restored.snapshot(), one.snapshot());
  }
}

}  // namespace
}  // namespace bourse::engine::testing
