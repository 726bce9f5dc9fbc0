#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "bourse/engine/engine.hpp"

namespace bourse::engine::testing {

inline constexpr SymbolId kSym = 1;
inline constexpr Side BUY = Side::BUY;
inline constexpr Side SELL = Side::SELL;

// (price, total quantity, order count), best first.
using Level = std::tuple<Price, Quantity, std::uint32_t>;
using Levels = std::vector<Level>;

// Expected-event builders, defaulting to kSym.
inline Event Acc(OrderId id, SymbolId s = kSym) { return Event::accepted(id, s); }
inline Event Rej(OrderId id, RejectReason r, SymbolId s = kSym) {
  return Event::rejected(id, s, r);
}
inline Event Cxl(OrderId id, Quantity remaining, CancelReason r, SymbolId s = kSym) {
  return Event::cancelled(id, s, remaining, r);
}
inline Event Done(OrderId id, OrderStatus st, Quantity filled, Quantity remaining,
                  SymbolId s = kSym) {
  return Event::done(id, s, st, filled, remaining);
}
// Trade where the maker belongs to account maker_acct and the taker to taker_acct.
inline Event Trd(OrderId maker, OrderId taker, AccountId maker_acct, AccountId taker_acct,
                 Price px, Quantity qty, Side aggressor, Quantity maker_rem,
                 Quantity taker_rem, SymbolId s = kSym) {
  return Event::trade(s, maker, taker, maker_acct, taker_acct, px, qty, aggressor, maker_rem,
                      taker_rem);
}

inline Event Mod(OrderId id, Price px, Quantity qty, SymbolId s = kSym) {
  return Event::modified(id, s, px, qty);
}

using Events = std::vector<Event>;

class EngineTest : public ::testing::Test {
 protected:
  Events submit(OrderId id, AccountId acct, Side side, OrderType type, TimeInForce tif,
                Price px, Quantity qty, SymbolId sym = kSym) {
    sink.events.clear();
    eng.submit(NewOrder{id, acct, sym, side, type, tif, px, qty});
    return sink.events;
  }
  Events limit(OrderId id, AccountId acct, Side side, Price px, Quantity qty,
               TimeInForce tif = TimeInForce::GTC, SymbolId sym = kSym) {
    return submit(id, acct, side, OrderType::LIMIT, tif, px, qty, sym);
  }
  Events market(OrderId id, AccountId acct, Side side, Quantity qty,
                TimeInForce tif = TimeInForce::IOC, SymbolId sym = kSym) {
    return submit(id, acct, side, OrderType::MARKET, tif, 0, qty, sym);
  }
  Events submit(const NewOrder& o) {
    sink.events.clear();
    eng.submit(o);
    return sink.events;
  }
  Events modify(OrderId id, AccountId acct, Price px, Quantity qty, SymbolId sym = kSym) {
    sink.events.clear();
    eng.modify(ModifyOrder{id, acct, sym, px, qty});
    return sink.events;
  }
  Events cancel(OrderId id, AccountId acct, SymbolId sym = kSym) {
    sink.events.clear();
    eng.cancel(CancelOrder{id, acct, sym});
    return sink.events;
  }
  // Events of a mass cancel; how many it cancelled goes to `mass_cancelled`.
  Events cancel_all(AccountId acct, std::optional<SymbolId> sym = std::nullopt) {
    sink.events.clear();
    mass_cancelled = eng.cancel_all(acct, sym);
    return sink.events;
  }
  bool halt(SymbolId sym = kSym) { return eng.set_trading_status(sym, TradingStatus::HALTED); }
  bool resume(SymbolId sym = kSym) { return eng.set_trading_status(sym, TradingStatus::TRADING); }
  Levels side(Side s, SymbolId sym = kSym, std::size_t n = 100) const {
    std::vector<LevelView> bids, asks;
    eng.depth(sym, n, bids, asks);
    Levels out;
    for (const LevelView& l : s == BUY ? bids : asks) {
      out.emplace_back(l.price, l.quantity, l.order_count);
    }
    return out;
  }
  Levels bids(SymbolId sym = kSym) const { return side(BUY, sym); }
  Levels asks(SymbolId sym = kSym) const { return side(SELL, sym); }

  EventCollector sink;
  Engine eng{sink};
  std::size_t mass_cancelled = 0;
};

// Runs `cmds` one call per command on `one` and as batches of every size from 1 to
// `max_batch` on `batched` (so that the batch pipeline's start and end, with no commands
// ahead to fetch, are crossed often); both must emit the same events and reach the same
// state. `label` names the stream in a failure.
inline void expect_batches_run_as_single_calls(const std::vector<Engine::Command>& cmds, std::size_t max_batch,
                                               Engine& one, const EventCollector& one_sink, Engine& batched,
                                               const EventCollector& batch_sink, const std::string& label) {
  for (const Engine::Command& c : cmds) one.execute(c);
  std::size_t at = 0;
  for (std::size_t size = 1; at < cmds.size(); size = size % max_batch + 1) {
    const std::size_t take = std::min(size, cmds.size() - at);
    batched.execute(cmds.data() + at, take);
    at += take;
  }
  ASSERT_EQ(one_sink.events.size(), batch_sink.events.size()) << label;
  EXPECT_TRUE(one_sink.events == batch_sink.events) << label;
  EXPECT_EQ(one.event_hash(), batched.event_hash()) << label;
  EXPECT_EQ(one.snapshot(), batched.snapshot()) << label;
}

}  // namespace bourse::engine::testing
