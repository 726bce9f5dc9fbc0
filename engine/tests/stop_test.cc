// Worked examples for stop and stop-limit orders (NewOrder::stop_price): validation,
// waiting off the book, the trigger on every price a sweep prints, the order in which
// triggered stops enter, cascades, entering as market / limit / FOK / iceberg / with
// self-trade prevention, cancel, mass cancel, modify, snapshot version 4 and batches.
// Book before, command, events, book after. Accounts: 1 makers, 2 the stops' owner,
// 3 takers.
#include <cstring>
#include <random>
#include <string>

#include "engine_fixture.hpp"

namespace bourse::engine::testing {
namespace {

using S = OrderStatus;
using R = RejectReason;
using C = CancelReason;
constexpr auto GTC = TimeInForce::GTC;
constexpr auto IOC = TimeInForce::IOC;
constexpr auto FOK = TimeInForce::FOK;
constexpr auto LIMIT = OrderType::LIMIT;
constexpr auto MARKET = OrderType::MARKET;

inline Event Trig(OrderId id, Price stop, Quantity qty, SymbolId s = kSym) {
  return Event::triggered(id, s, stop, qty);
}

using Waiting = std::vector<std::tuple<OrderId, Price, Quantity>>;  // id, stop price, quantity

class StopTest : public EngineTest {
 protected:
  // A stop (market) of account 2.
  Events stop(OrderId id, Side side, Price stop_price, Quantity qty, TimeInForce tif = IOC,
              AccountId acct = 2) {
    NewOrder o{id, acct, kSym, side, MARKET, tif, 0, qty};
    o.stop_price = stop_price;
    return submit(o);
  }
  Events stop_limit(OrderId id, Side side, Price stop_price, Price px, Quantity qty, TimeInForce tif = GTC,
                    AccountId acct = 2) {
    NewOrder o{id, acct, kSym, side, LIMIT, tif, px, qty};
    o.stop_price = stop_price;
    return submit(o);
  }
  Events modify_stop(OrderId id, Price px, Quantity qty, Price stop_price, AccountId acct = 2) {
    sink.events.clear();
    eng.modify(ModifyOrder{id, acct, kSym, px, qty, stop_price});
    return sink.events;
  }
  // A trade at `px` between accounts 1 and 3 (ids 900+), which sets the last trade price.
  void print(Price px) {
    limit(next_print_, 1, SELL, px, 1);
    limit(next_print_ + 1, 3, BUY, px, 1);
    next_print_ += 2;
    ASSERT_EQ(eng.last_trade_price(kSym), px);
  }
  Waiting waiting(Side s) const {
    std::vector<StopOrder> buys, sells;
    eng.stops(kSym, buys, sells);
    Waiting out;
    for (const StopOrder& o : s == BUY ? buys : sells) out.emplace_back(o.order_id, o.stop_price, o.quantity);
    return out;
  }
  std::vector<OrderId> queue(Side s) const {
    std::vector<OrderEntry> bids, asks;
    eng.l3(kSym, bids, asks);
    std::vector<OrderId> ids;
    for (const OrderEntry& o : s == BUY ? bids : asks) ids.push_back(o.order_id);
    return ids;
  }

  OrderId next_print_ = 900;
};

// ---- accepting and waiting ---------------------------------------------------------

TEST_F(StopTest, AStopIsAcceptedAndWaitsOffTheBook) {
  print(100);
  EXPECT_EQ(stop(10, BUY, 105, 4), (Events{Acc(10), Done(10, S::NEW, 0, 4)}));
  EXPECT_EQ(stop_limit(11, SELL, 95, 94, 3), (Events{Acc(11), Done(11, S::NEW, 0, 3)}));
  EXPECT_TRUE(bids().empty());
  EXPECT_TRUE(asks().empty());
  EXPECT_FALSE(eng.order(10).has_value());  // not on the book
  EXPECT_EQ(eng.live_orders(), 0u);
  EXPECT_EQ(waiting(BUY), (Waiting{{10, 105, 4}}));
  EXPECT_EQ(waiting(SELL), (Waiting{{11, 95, 3}}));
  // Its id is taken.
  EXPECT_EQ(limit(10, 2, BUY, 90, 1), (Events{Rej(10, R::DUPLICATE_ORDER_ID), Done(10, S::REJECTED, 0, 0)}));
}

TEST_F(StopTest, OnASymbolThatNeverTradedAnyStopPriceWaits) {
  EXPECT_EQ(eng.last_trade_price(kSym), 0);
  EXPECT_EQ(stop(10, BUY, 1, 1), (Events{Acc(10), Done(10, S::NEW, 0, 1)}));
  EXPECT_EQ(stop(11, SELL, kMaxPrice, 1), (Events{Acc(11), Done(11, S::NEW, 0, 1)}));
}

TEST_F(StopTest, AStopTheLastTradeAlreadyReachedIsRefused) {
  print(100);
  const auto refused = [](OrderId id) { return Events{Rej(id, R::STOP_WOULD_TRIGGER), Done(id, S::REJECTED, 0, 0)}; };
  EXPECT_EQ(stop(10, BUY, 100, 1), refused(10));  // at the last trade
  EXPECT_EQ(stop(11, BUY, 99, 1), refused(11));   // below it
  EXPECT_EQ(stop_limit(12, SELL, 100, 100, 1), refused(12));
  EXPECT_EQ(stop_limit(13, SELL, 101, 100, 1), refused(13));
  EXPECT_EQ(stop(14, BUY, 101, 1), (Events{Acc(14), Done(14, S::NEW, 0, 1)}));
  EXPECT_EQ(stop(15, SELL, 99, 1), (Events{Acc(15), Done(15, S::NEW, 0, 1)}));
  // A refused stop did not take its id.
  EXPECT_EQ(stop(10, BUY, 102, 1), (Events{Acc(10), Done(10, S::NEW, 0, 1)}));
}

TEST_F(StopTest, ValidationReasons) {
  const auto rejected = [](OrderId id, R why) { return Events{Rej(id, why), Done(id, S::REJECTED, 0, 0)}; };
  EXPECT_EQ(stop(10, BUY, -1, 1), rejected(10, R::INVALID_STOP_PRICE));
  EXPECT_EQ(stop(11, BUY, kMaxPrice + 1, 1), rejected(11, R::INVALID_STOP_PRICE));
  NewOrder post{12, 2, kSym, BUY, LIMIT, GTC, 100, 1};
  post.post_only = true;
  post.stop_price = 101;
  EXPECT_EQ(submit(post), rejected(12, R::INVALID_POST_ONLY));
  NewOrder bad_side{13, 2, kSym, static_cast<Side>(9), MARKET, IOC, 0, 1};
  bad_side.stop_price = 101;
  EXPECT_EQ(submit(bad_side), rejected(13, R::INVALID_SIDE));  // the order's own checks first
  EXPECT_EQ(stop(14, BUY, 101, 0), rejected(14, R::INVALID_QUANTITY));
  EXPECT_EQ(stop_limit(15, BUY, 101, 0, 1), rejected(15, R::INVALID_PRICE));
  NewOrder display_ioc{16, 2, kSym, BUY, LIMIT, IOC, 101, 5};
  display_ioc.display_quantity = 1;
  display_ioc.stop_price = 101;
  EXPECT_EQ(submit(display_ioc), rejected(16, R::INVALID_DISPLAY_QUANTITY));

  Instrument inst;
  inst.tick_size = 5;
  ASSERT_TRUE(eng.set_instrument(kSym, inst));
  EXPECT_EQ(stop(17, BUY, 103, 1), rejected(17, R::PRICE_NOT_ON_TICK));  // the stop price too
  EXPECT_EQ(stop_limit(18, BUY, 105, 103, 1), rejected(18, R::PRICE_NOT_ON_TICK));
  EXPECT_EQ(stop(19, BUY, 105, 1), (Events{Acc(19), Done(19, S::NEW, 0, 1)}));
  EXPECT_EQ(stop(19, BUY, 110, 1), rejected(19, R::DUPLICATE_ORDER_ID));
  ASSERT_TRUE(halt());
  EXPECT_EQ(stop(20, BUY, 110, 1), rejected(20, R::INSTRUMENT_HALTED));
}

// ---- triggering ----------------------------------------------------------------------

TEST_F(StopTest, ABuyStopEntersAsAMarketOrderWhenATradePrintsAtItsPrice) {
  print(100);
  limit(3, 1, SELL, 104, 3);
  limit(4, 1, SELL, 105, 5);
  stop(10, BUY, 104, 4);
  // A trade at 103 would not reach it; this one prints at 104, its stop price.
  EXPECT_EQ(limit(5, 3, BUY, 104, 1),
            (Events{Acc(5), Trd(3, 5, 1, 3, 104, 1, BUY, 2, 0), Done(5, S::FILLED, 1, 0),
                    Trig(10, 104, 4), Trd(3, 10, 1, 2, 104, 2, BUY, 0, 2), Trd(4, 10, 1, 2, 105, 2, BUY, 3, 0),
                    Done(10, S::FILLED, 4, 0)}));
  EXPECT_EQ(asks(), (Levels{{105, 3, 1}}));
  EXPECT_TRUE(waiting(BUY).empty());
  EXPECT_EQ(eng.last_trade_price(kSym), 105);  // the stop's own trades moved it
}

TEST_F(StopTest, ASellStopLimitRestsWithTheTriggerAsItsTime) {
  print(100);
  limit(6, 1, BUY, 99, 2);
  limit(8, 1, SELL, 101, 1);
  stop_limit(10, SELL, 99, 101, 3);  // sells at 101 or better once the price falls to 99
  limit(9, 1, SELL, 101, 1);         // at 101 before the trigger: ahead of the stop
  EXPECT_EQ(limit(7, 3, SELL, 99, 1),
            (Events{Acc(7), Trd(6, 7, 1, 3, 99, 1, SELL, 1, 0), Done(7, S::FILLED, 1, 0), Trig(10, 99, 3),
                    Done(10, S::NEW, 0, 3)}));
  EXPECT_EQ(queue(SELL), (std::vector<OrderId>{8, 9, 10}));
  EXPECT_EQ(asks(), (Levels{{101, 5, 3}}));
  EXPECT_EQ(eng.order(10)->remaining, 3);
}

TEST_F(StopTest, ASweepTriggersAStopItPassesThroughThoughItsLastTradeIsBeyond) {
  print(100);
  limit(3, 1, SELL, 98, 1);
  limit(4, 1, SELL, 102, 1);
  limit(6, 1, BUY, 97, 1);
  stop(10, SELL, 99, 1);
  // The buy prints 98 (at or below the sell stop's 99), then 102.
  EXPECT_EQ(limit(5, 3, BUY, 102, 2),
            (Events{Acc(5), Trd(3, 5, 1, 3, 98, 1, BUY, 0, 1), Trd(4, 5, 1, 3, 102, 1, BUY, 0, 0),
                    Done(5, S::FILLED, 2, 0), Trig(10, 99, 1), Trd(6, 10, 1, 2, 97, 1, SELL, 0, 0),
                    Done(10, S::FILLED, 1, 0)}));
  EXPECT_EQ(eng.last_trade_price(kSym), 97);
}

TEST_F(StopTest, StopsOneTradeReachesEnterLowestStopFirstThenByArrival) {
  print(100);
  limit(3, 1, SELL, 101, 1);
  limit(4, 1, SELL, 102, 10);
  stop(10, BUY, 101, 1);
  stop(11, BUY, 101, 1);
  stop(12, BUY, 102, 1);
  stop(13, BUY, 101, 1);  // after 12, but at the lower stop price
  EXPECT_EQ(waiting(BUY), (Waiting{{10, 101, 1}, {11, 101, 1}, {13, 101, 1}, {12, 102, 1}}));
  EXPECT_EQ(limit(5, 3, BUY, 102, 2),
            (Events{Acc(5), Trd(3, 5, 1, 3, 101, 1, BUY, 0, 1), Trd(4, 5, 1, 3, 102, 1, BUY, 9, 0),
                    Done(5, S::FILLED, 2, 0),
                    Trig(10, 101, 1), Trd(4, 10, 1, 2, 102, 1, BUY, 8, 0), Done(10, S::FILLED, 1, 0),
                    Trig(11, 101, 1), Trd(4, 11, 1, 2, 102, 1, BUY, 7, 0), Done(11, S::FILLED, 1, 0),
                    Trig(13, 101, 1), Trd(4, 13, 1, 2, 102, 1, BUY, 6, 0), Done(13, S::FILLED, 1, 0),
                    Trig(12, 102, 1), Trd(4, 12, 1, 2, 102, 1, BUY, 5, 0), Done(12, S::FILLED, 1, 0)}));
}

TEST_F(StopTest, SellStopsEnterHighestStopFirst) {
  print(100);
  limit(3, 1, BUY, 99, 1);
  limit(4, 1, BUY, 97, 10);
  stop(10, SELL, 97, 1);
  stop(11, SELL, 99, 1);
  stop(12, SELL, 98, 1);
  EXPECT_EQ(waiting(SELL), (Waiting{{11, 99, 1}, {12, 98, 1}, {10, 97, 1}}));
  EXPECT_EQ(limit(5, 3, SELL, 97, 2),
            (Events{Acc(5), Trd(3, 5, 1, 3, 99, 1, SELL, 0, 1), Trd(4, 5, 1, 3, 97, 1, SELL, 9, 0),
                    Done(5, S::FILLED, 2, 0),
                    Trig(11, 99, 1), Trd(4, 11, 1, 2, 97, 1, SELL, 8, 0), Done(11, S::FILLED, 1, 0),
                    Trig(12, 98, 1), Trd(4, 12, 1, 2, 97, 1, SELL, 7, 0), Done(12, S::FILLED, 1, 0),
                    Trig(10, 97, 1), Trd(4, 10, 1, 2, 97, 1, SELL, 6, 0), Done(10, S::FILLED, 1, 0)}));
}

TEST_F(StopTest, ABuyWhoseFirstTradeIsBelowTheLastTradeTriggersSellStopsThenBuyStops) {
  print(100);
  limit(3, 1, SELL, 97, 1);
  limit(4, 1, SELL, 102, 1);
  stop_limit(10, BUY, 101, 50, 1);    // buys at 50 or better: rests
  stop_limit(11, SELL, 98, 150, 1);   // sells at 150 or better: rests
  stop_limit(12, SELL, 99, 150, 1);
  // Prints 97 (reaching both sell stops, the highest first), then 102 (the buy stop).
  EXPECT_EQ(limit(5, 3, BUY, 102, 2),
            (Events{Acc(5), Trd(3, 5, 1, 3, 97, 1, BUY, 0, 1), Trd(4, 5, 1, 3, 102, 1, BUY, 0, 0),
                    Done(5, S::FILLED, 2, 0), Trig(12, 99, 1), Done(12, S::NEW, 0, 1), Trig(11, 98, 1),
                    Done(11, S::NEW, 0, 1), Trig(10, 101, 1), Done(10, S::NEW, 0, 1)}));
  EXPECT_EQ(queue(SELL), (std::vector<OrderId>{12, 11}));  // in the order they entered
  EXPECT_EQ(queue(BUY), (std::vector<OrderId>{10}));
}

TEST_F(StopTest, OnTheFirstTradeEverTheAggressorsSideEntersFirst) {
  // No last trade yet, so stops wait on both sides of the coming price.
  limit(3, 1, SELL, 100, 1);
  stop_limit(10, SELL, 100, 200, 1);  // reached by a print at 100 (at or below 100)
  stop_limit(11, BUY, 100, 1, 1);     // reached too (at or above 100)
  EXPECT_EQ(limit(5, 3, BUY, 100, 1),
            (Events{Acc(5), Trd(3, 5, 1, 3, 100, 1, BUY, 0, 0), Done(5, S::FILLED, 1, 0), Trig(11, 100, 1),
                    Done(11, S::NEW, 0, 1), Trig(10, 100, 1), Done(10, S::NEW, 0, 1)}));
}

TEST_F(StopTest, ACascadeOfStopsEachTriggeringTheNext) {
  print(99);
  limit(1, 1, SELL, 100, 1);
  limit(2, 1, SELL, 101, 1);
  limit(3, 1, SELL, 102, 1);
  limit(4, 1, SELL, 103, 5);
  stop(10, BUY, 100, 1);
  stop(11, BUY, 101, 1);
  stop(12, BUY, 102, 1);
  EXPECT_EQ(limit(7, 3, BUY, 100, 1),
            (Events{Acc(7), Trd(1, 7, 1, 3, 100, 1, BUY, 0, 0), Done(7, S::FILLED, 1, 0),
                    Trig(10, 100, 1), Trd(2, 10, 1, 2, 101, 1, BUY, 0, 0), Done(10, S::FILLED, 1, 0),
                    Trig(11, 101, 1), Trd(3, 11, 1, 2, 102, 1, BUY, 0, 0), Done(11, S::FILLED, 1, 0),
                    Trig(12, 102, 1), Trd(4, 12, 1, 2, 103, 1, BUY, 4, 0), Done(12, S::FILLED, 1, 0)}));
  EXPECT_EQ(asks(), (Levels{{103, 4, 1}}));
  EXPECT_EQ(eng.last_trade_price(kSym), 103);
}

TEST_F(StopTest, ACascadeRunsBothWays) {
  // A triggered sell stop's fall reaches a sell stop-limit whose own trade (at its limit
  // above the market) is a rise that reaches a buy stop.
  print(100);
  limit(1, 1, BUY, 99, 1);
  limit(2, 1, BUY, 98, 1);
  limit(3, 1, SELL, 104, 1);
  stop(10, SELL, 99, 1);
  stop(11, SELL, 98, 1);
  EXPECT_EQ(limit(5, 3, SELL, 99, 1),
            (Events{Acc(5), Trd(1, 5, 1, 3, 99, 1, SELL, 0, 0), Done(5, S::FILLED, 1, 0), Trig(10, 99, 1),
                    Trd(2, 10, 1, 2, 98, 1, SELL, 0, 0), Done(10, S::FILLED, 1, 0), Trig(11, 98, 1),
                    Cxl(11, 1, C::MARKET_REMAINDER), Done(11, S::CANCELLED, 0, 0)}));
  EXPECT_TRUE(waiting(SELL).empty());
}

TEST_F(StopTest, ATriggeredFokThatCannotFillIsKilledWithoutATrace) {
  print(100);
  limit(3, 1, SELL, 101, 1);
  limit(4, 1, SELL, 102, 1);
  stop(10, BUY, 101, 5, FOK);
  EXPECT_EQ(limit(5, 3, BUY, 101, 1),
            (Events{Acc(5), Trd(3, 5, 1, 3, 101, 1, BUY, 0, 0), Done(5, S::FILLED, 1, 0), Trig(10, 101, 5),
                    Cxl(10, 5, C::FOK_UNFILLABLE), Done(10, S::CANCELLED, 0, 0)}));
  EXPECT_EQ(asks(), (Levels{{102, 1, 1}}));
}

TEST_F(StopTest, ATriggeredStopLimitIocCancelsItsRemainder) {
  print(100);
  limit(3, 1, SELL, 101, 1);
  limit(4, 1, SELL, 102, 3);
  limit(6, 1, SELL, 103, 3);
  stop_limit(10, BUY, 101, 102, 5, IOC);
  EXPECT_EQ(limit(5, 3, BUY, 101, 1),
            (Events{Acc(5), Trd(3, 5, 1, 3, 101, 1, BUY, 0, 0), Done(5, S::FILLED, 1, 0), Trig(10, 101, 5),
                    Trd(4, 10, 1, 2, 102, 3, BUY, 0, 2), Cxl(10, 2, C::IOC_REMAINDER),
                    Done(10, S::CANCELLED, 3, 0)}));
}

TEST_F(StopTest, ATriggeredStopLimitCanBeAnIceberg) {
  print(100);
  limit(3, 1, SELL, 101, 1);
  limit(4, 1, SELL, 102, 2);
  NewOrder ice{10, 2, kSym, BUY, LIMIT, GTC, 102, 10};
  ice.display_quantity = 3;
  ice.stop_price = 101;
  EXPECT_EQ(submit(ice), (Events{Acc(10), Done(10, S::NEW, 0, 10)}));
  EXPECT_EQ(limit(5, 3, BUY, 101, 1),
            (Events{Acc(5), Trd(3, 5, 1, 3, 101, 1, BUY, 0, 0), Done(5, S::FILLED, 1, 0), Trig(10, 101, 10),
                    Trd(4, 10, 1, 2, 102, 2, BUY, 0, 8), Done(10, S::PARTIALLY_FILLED, 2, 8)}));
  EXPECT_EQ(bids(), (Levels{{102, 3, 1}}));  // one slice of 3 shows
  EXPECT_EQ(eng.order(10)->display_quantity, 3);
}

TEST_F(StopTest, ATriggeredStopMeetsSelfTradePrevention) {
  print(100);
  limit(3, 1, SELL, 101, 1);
  limit(4, 2, SELL, 102, 1);  // the stop owner's own asks
  limit(8, 2, SELL, 103, 1);
  limit(6, 1, SELL, 103, 1);
  NewOrder o{10, 2, kSym, BUY, MARKET, IOC, 0, 2};
  o.stop_price = 101;
  submit(o);  // CANCEL_INCOMING (the default): stopped by its own ask at 102
  EXPECT_EQ(limit(5, 3, BUY, 101, 1),
            (Events{Acc(5), Trd(3, 5, 1, 3, 101, 1, BUY, 0, 0), Done(5, S::FILLED, 1, 0), Trig(10, 101, 2),
                    Cxl(10, 2, C::SELF_TRADE_PREVENTED), Done(10, S::CANCELLED, 0, 0)}));
  o.order_id = 11;
  o.stp = SelfTradePrevention::CANCEL_RESTING;
  o.stop_price = 102;
  submit(o);  // CANCEL_RESTING: cancels its own ask at 103 and buys the next
  EXPECT_EQ(limit(7, 3, BUY, 102, 1),
            (Events{Acc(7), Trd(4, 7, 2, 3, 102, 1, BUY, 0, 0), Done(7, S::FILLED, 1, 0), Trig(11, 102, 2),
                    Cxl(8, 1, C::SELF_TRADE_PREVENTED), Done(8, S::CANCELLED, 0, 0),
                    Trd(6, 11, 1, 2, 103, 1, BUY, 0, 1), Cxl(11, 1, C::MARKET_REMAINDER),
                    Done(11, S::CANCELLED, 1, 0)}));
  EXPECT_TRUE(asks().empty());
}

// ---- cancel, mass cancel, modify -------------------------------------------------------------

TEST_F(StopTest, AWaitingStopCancelsLikeARestingOrder) {
  print(100);
  stop(10, BUY, 105, 4);
  EXPECT_EQ(cancel(10, 3), (Events{Rej(10, R::UNKNOWN_ORDER)}));      // another account's
  EXPECT_EQ(cancel(10, 2, 7), (Events{Rej(10, R::UNKNOWN_ORDER, 7)}));  // another symbol
  EXPECT_EQ(cancel(10, 2), (Events{Cxl(10, 4, C::USER), Done(10, S::CANCELLED, 0, 0)}));
  EXPECT_EQ(cancel(10, 2), (Events{Rej(10, R::UNKNOWN_ORDER)}));
  EXPECT_TRUE(waiting(BUY).empty());
  EXPECT_EQ(stop(10, BUY, 105, 1), (Events{Rej(10, R::DUPLICATE_ORDER_ID), Done(10, S::REJECTED, 0, 0)}));
  // Cancels work while halted.
  stop(11, SELL, 95, 1);
  ASSERT_TRUE(halt());
  EXPECT_EQ(cancel(11, 2), (Events{Cxl(11, 1, C::USER), Done(11, S::CANCELLED, 0, 0)}));
}

TEST_F(StopTest, MassCancelTakesTheWaitingStopsInIdOrder) {
  print(100);
  stop(7, BUY, 105, 1);
  limit(5, 2, BUY, 90, 2);
  stop_limit(3, SELL, 95, 94, 3);
  stop(8, BUY, 106, 1, IOC, /*acct=*/4);  // another account's: stays
  EXPECT_EQ(cancel_all(2), (Events{Cxl(3, 3, C::MASS_CANCEL), Done(3, S::CANCELLED, 0, 0),
                                   Cxl(5, 2, C::MASS_CANCEL), Done(5, S::CANCELLED, 0, 0),
                                   Cxl(7, 1, C::MASS_CANCEL), Done(7, S::CANCELLED, 0, 0)}));
  EXPECT_EQ(mass_cancelled, 3u);
  EXPECT_EQ(waiting(BUY), (Waiting{{8, 106, 1}}));
  EXPECT_TRUE(waiting(SELL).empty());
}

TEST_F(StopTest, AModifyKeepsItsPlaceOnlyWhenNothingButTheQuantityShrinks) {
  print(100);
  stop(10, BUY, 101, 3);
  stop(11, BUY, 101, 1);
  EXPECT_EQ(modify_stop(10, 0, 2, 0), (Events{Mod(10, 0, 2), Done(10, S::NEW, 0, 2)}));
  EXPECT_EQ(waiting(BUY), (Waiting{{10, 101, 2}, {11, 101, 1}}));
  EXPECT_EQ(modify_stop(10, 0, 5, 0), (Events{Mod(10, 0, 5), Done(10, S::NEW, 0, 5)}));  // grows: behind 11
  EXPECT_EQ(waiting(BUY), (Waiting{{11, 101, 1}, {10, 101, 5}}));
  EXPECT_EQ(modify_stop(11, 0, 1, 103), (Events{Mod(11, 0, 1), Done(11, S::NEW, 0, 1)}));
  EXPECT_EQ(modify_stop(10, 0, 5, 103), (Events{Mod(10, 0, 5), Done(10, S::NEW, 0, 5)}));
  EXPECT_EQ(waiting(BUY), (Waiting{{11, 103, 1}, {10, 103, 5}}));
  // A stop-limit's new limit price loses its place too.
  stop_limit(12, SELL, 98, 97, 1);
  stop_limit(13, SELL, 98, 97, 1);
  EXPECT_EQ(modify_stop(12, 96, 1, 0), (Events{Mod(12, 96, 1), Done(12, S::NEW, 0, 1)}));
  EXPECT_EQ(waiting(SELL), (Waiting{{13, 98, 1}, {12, 98, 1}}));
}

TEST_F(StopTest, ARefusedModifyLeavesTheStopAsItWas) {
  print(100);
  stop(10, BUY, 101, 3);
  stop_limit(11, SELL, 98, 97, 2);
  const auto rej = [](OrderId id, R why) { return Events{Rej(id, why)}; };
  EXPECT_EQ(modify_stop(10, 0, 3, 100), rej(10, R::STOP_WOULD_TRIGGER));
  EXPECT_EQ(modify_stop(11, 97, 2, 100), rej(11, R::STOP_WOULD_TRIGGER));
  EXPECT_EQ(modify_stop(10, 101, 3, 0), rej(10, R::INVALID_PRICE));  // a stop has no limit
  EXPECT_EQ(modify_stop(11, 0, 2, 0), rej(11, R::INVALID_PRICE));    // a stop-limit has one
  EXPECT_EQ(modify_stop(10, 0, 0, 0), rej(10, R::INVALID_QUANTITY));
  EXPECT_EQ(modify_stop(10, 0, 3, -5), rej(10, R::INVALID_STOP_PRICE));
  EXPECT_EQ(modify_stop(10, 0, 3, 0, /*acct=*/3), rej(10, R::UNKNOWN_ORDER));
  ASSERT_TRUE(halt());
  EXPECT_EQ(modify_stop(10, 0, 3, 105), rej(10, R::INSTRUMENT_HALTED));
  EXPECT_EQ(waiting(BUY), (Waiting{{10, 101, 3}}));
  EXPECT_EQ(waiting(SELL), (Waiting{{11, 98, 2}}));
}

TEST_F(StopTest, AStopPriceOnAModifyOfARestingOrderIsRefused) {
  limit(5, 2, BUY, 90, 2);
  EXPECT_EQ(modify_stop(5, 90, 1, 95), (Events{Rej(5, R::INVALID_STOP_PRICE)}));
  EXPECT_EQ(bids(), (Levels{{90, 2, 1}}));
}

TEST_F(StopTest, AModifyThatTradesTriggersStops) {
  print(100);
  limit(3, 1, SELL, 101, 1);
  limit(4, 1, SELL, 102, 1);
  limit(5, 3, BUY, 99, 1);
  stop(10, BUY, 101, 1);
  EXPECT_EQ(modify(5, 3, 101, 1),
            (Events{Mod(5, 101, 1), Trd(3, 5, 1, 3, 101, 1, BUY, 0, 0), Done(5, S::FILLED, 1, 0), Trig(10, 101, 1),
                    Trd(4, 10, 1, 2, 102, 1, BUY, 0, 0), Done(10, S::FILLED, 1, 0)}));
}

TEST_F(StopTest, AHaltedSymbolTriggersNothingAndKeepsItsStops) {
  print(100);
  limit(3, 1, SELL, 101, 1);
  stop(10, BUY, 101, 1);
  ASSERT_TRUE(halt());
  EXPECT_EQ(limit(5, 3, BUY, 101, 1), (Events{Rej(5, R::INSTRUMENT_HALTED), Done(5, S::REJECTED, 0, 0)}));
  ASSERT_TRUE(resume());
  EXPECT_EQ(waiting(BUY), (Waiting{{10, 101, 1}}));
}

// ---- snapshot and batches --------------------------------------------------------------

TEST_F(StopTest, ASnapshotCarriesStopsAndTheLastTradePrice) {
  print(100);
  limit(3, 1, SELL, 101, 1);
  limit(4, 1, SELL, 102, 5);
  stop(10, BUY, 101, 1);
  stop(11, BUY, 101, 2);
  stop_limit(12, SELL, 95, 94, 3, GTC);
  const std::string snap = eng.snapshot();
  EventCollector sink2;
  Engine other(sink2);
  other.restore(snap);
  EXPECT_EQ(other.snapshot(), snap);
  EXPECT_EQ(other.last_trade_price(kSym), 100);
  // Both go on alike, the stops in the same order.
  const Events live = limit(5, 3, BUY, 101, 1);
  other.submit(NewOrder{5, 3, kSym, BUY, LIMIT, GTC, 101, 1});
  EXPECT_EQ(sink2.events, live);
  EXPECT_EQ(live.size(), 9u);  // the taker's 3, then 10's and 11's
  EXPECT_EQ(other.event_hash(), eng.event_hash());
  EXPECT_EQ(other.snapshot(), eng.snapshot());
}

TEST_F(StopTest, RestoreRefusesAStopTheLastTradeAlreadyReached) {
  print(100);
  stop(10, BUY, 101, 1);
  std::string snap = eng.snapshot();
  // The stop is the snapshot's last 51 bytes (then the SELL count, 4): its stop price at 16.
  const std::size_t at = snap.size() - 4 - 51 + 16;
  const Price reached = 100;
  std::memcpy(&snap[at], &reached, sizeof reached);
  EventCollector sink2;
  Engine other(sink2);
  try {
    other.restore(snap);
    ADD_FAILURE() << "restored a stop at the last trade price";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "snapshot: invalid stop");
  }
}

TEST(StopBatch, RunsExactlyAsOneCallPerCommand) {
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    std::mt19937_64 rng(seed);
    std::vector<Engine::Command> cmds;
    for (OrderId id = 1; id <= 3000; ++id) {
      Engine::Command c{Engine::Command::Op::SUBMIT, {}};
      NewOrder& o = c.order;
      o = NewOrder{id, 1 + rng() % 4, kSym, rng() % 2 ? BUY : SELL, LIMIT, GTC,
                   static_cast<Price>(95 + rng() % 11), static_cast<Quantity>(1 + rng() % 5)};
      const auto roll = rng() % 10;
      if (roll < 3) {  // a stop or stop-limit around the market
        o.stop_price = static_cast<Price>(93 + rng() % 15);
        if (rng() % 2) {
          o.type = MARKET;
          o.price = 0;
          o.tif = IOC;
        }
      } else if (roll < 5) {
        c.op = Engine::Command::Op::CANCEL;
        o.order_id = 1 + rng() % id;
      } else if (roll < 6) {
        c.op = Engine::Command::Op::MODIFY;
        o.order_id = 1 + rng() % id;
        o.stop_price = rng() % 2 ? 0 : static_cast<Price>(93 + rng() % 15);
      }
      cmds.push_back(c);
    }
    EventCollector one_sink, batch_sink;
    Engine one(one_sink), batched(batch_sink);
    // In batches of 1 to 31 commands, and as one batch of the whole stream.
    expect_batches_run_as_single_calls(cmds, 31, one, one_sink, batched, batch_sink, "seed " + std::to_string(seed));
    EventCollector whole_sink;
    Engine whole(whole_sink);
    whole.execute(cmds.data(), cmds.size());
    ASSERT_EQ(one_sink.events, whole_sink.events) << "seed " << seed;
    EXPECT_EQ(one.snapshot(), whole.snapshot());
    std::size_t triggered = 0;
    for (const Event& e : one_sink.events) triggered += e.kind == EventKind::TRIGGERED;
    EXPECT_GT(triggered, 10u) << "seed " << seed;
    EventCollector restored_sink;
    Engine restored(restored_sink);
    restored.restore(one.snapshot());
    EXPECT_EQ(restored.snapshot(), one.snapshot());
  }
}

}  // namespace
}  // namespace bourse::engine::testing
