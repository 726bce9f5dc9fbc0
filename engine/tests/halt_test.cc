// Worked examples for an instrument's trading status (set_trading_status: halt and
// resume): book before, command, events, book after. Then the snapshot's status byte
// (version 2, and version 1 read as TRADING) and the batch path with halts in between.
#include <algorithm>
#include <cstring>
#include <random>
#include <stdexcept>
#include <string>

#include "engine_fixture.hpp"

namespace bourse::engine::testing {
namespace {

using S = OrderStatus;
using R = RejectReason;
using TS = TradingStatus;

Events rejected(OrderId id, R why, SymbolId sym = kSym) {
  return Events{Rej(id, why, sym), Done(id, S::REJECTED, 0, 0, sym)};
}

// A two-sided book on kSym: bid 99 x 3 (order 2, account 8), ask 100 x 5 (order 1, account 7).
class HaltTest : public EngineTest {
 protected:
  void two_sided() {
    limit(1, 7, SELL, 100, 5);
    limit(2, 8, BUY, 99, 3);
  }
};

// ---- submit -----------------------------------------------------------------

TEST_F(HaltTest, HaltedLimitSubmitIsRejectedAndLeavesTheBook) {
  two_sided();
  sink.events.clear();
  ASSERT_TRUE(halt());
  EXPECT_TRUE(sink.events.empty());  // a status change is not an event
  EXPECT_EQ(eng.trading_status(kSym), TS::HALTED);
  // Would cross the ask; GTC, IOC and FOK alike.
  EXPECT_EQ(limit(3, 9, BUY, 100, 5), rejected(3, R::INSTRUMENT_HALTED));
  EXPECT_EQ(limit(4, 9, BUY, 100, 5, TimeInForce::IOC), rejected(4, R::INSTRUMENT_HALTED));
  EXPECT_EQ(limit(5, 9, BUY, 100, 5, TimeInForce::FOK), rejected(5, R::INSTRUMENT_HALTED));
  // Would only rest.
  EXPECT_EQ(limit(6, 9, SELL, 120, 1), rejected(6, R::INSTRUMENT_HALTED));
  EXPECT_EQ(bids(), (Levels{{99, 3, 1}}));
  EXPECT_EQ(asks(), (Levels{{100, 5, 1}}));
  EXPECT_EQ(eng.live_orders(), 2u);
  EXPECT_FALSE(eng.order(3).has_value());
}

TEST_F(HaltTest, HaltedMarketSubmitIsRejectedForEveryTif) {
  two_sided();
  halt();
  EXPECT_EQ(market(3, 9, BUY, 5, TimeInForce::IOC), rejected(3, R::INSTRUMENT_HALTED));
  EXPECT_EQ(market(4, 9, SELL, 1, TimeInForce::GTC), rejected(4, R::INSTRUMENT_HALTED));
  EXPECT_EQ(market(5, 9, BUY, 5, TimeInForce::FOK), rejected(5, R::INSTRUMENT_HALTED));
  EXPECT_EQ(bids(), (Levels{{99, 3, 1}}));
  EXPECT_EQ(asks(), (Levels{{100, 5, 1}}));
}

TEST_F(HaltTest, MalformedOrderOnHaltedSymbolKeepsItsOwnReason) {
  two_sided();
  halt();
  EXPECT_EQ(submit(3, 9, static_cast<Side>(0), OrderType::LIMIT, TimeInForce::GTC, 100, 1),
            rejected(3, R::INVALID_SIDE));
  EXPECT_EQ(limit(4, 9, BUY, 100, 0), rejected(4, R::INVALID_QUANTITY));
  EXPECT_EQ(limit(5, 9, BUY, -1, 1), rejected(5, R::INVALID_PRICE));
  EXPECT_EQ(submit(6, 9, BUY, OrderType::MARKET, TimeInForce::IOC, 100, 1),
            rejected(6, R::INVALID_PRICE));
  NewOrder bad_stp{7, 9, kSym, BUY, OrderType::LIMIT, TimeInForce::GTC, 100, 1};
  bad_stp.stp = static_cast<SelfTradePrevention>(0);
  EXPECT_EQ(submit(bad_stp), rejected(7, R::INVALID_SELF_TRADE_PREVENTION));
  NewOrder bad_post_only{8, 9, kSym, BUY, OrderType::LIMIT, TimeInForce::IOC, 98, 1};
  bad_post_only.post_only = true;
  EXPECT_EQ(submit(bad_post_only), rejected(8, R::INVALID_POST_ONLY));
  EXPECT_EQ(asks(), (Levels{{100, 5, 1}}));
}

// The halt is checked before the instrument rules, the duplicate id and post-only
// crossing: each of those would have rejected the order otherwise.
TEST_F(HaltTest, HaltComesBeforeRulesDuplicateIdAndPostOnlyCrossing) {
  Instrument inst;
  inst.tick_size = 5;
  inst.min_quantity = 2;
  ASSERT_TRUE(eng.set_instrument(kSym, inst));
  limit(1, 7, SELL, 100, 5);
  halt();
  EXPECT_EQ(limit(2, 9, BUY, 101, 5), rejected(2, R::INSTRUMENT_HALTED));  // off tick
  EXPECT_EQ(limit(3, 9, BUY, 95, 1), rejected(3, R::INSTRUMENT_HALTED));   // below min
  EXPECT_EQ(limit(1, 9, BUY, 95, 5), rejected(1, R::INSTRUMENT_HALTED));   // id 1 is live
  NewOrder crossing{4, 9, kSym, BUY, OrderType::LIMIT, TimeInForce::GTC, 100, 5};
  crossing.post_only = true;
  EXPECT_EQ(submit(crossing), rejected(4, R::INSTRUMENT_HALTED));
  resume();
  // The same commands get their own reasons back once trading.
  EXPECT_EQ(limit(2, 9, BUY, 101, 5), rejected(2, R::PRICE_NOT_ON_TICK));
  EXPECT_EQ(limit(1, 9, BUY, 95, 5), rejected(1, R::DUPLICATE_ORDER_ID));
  EXPECT_EQ(submit(crossing), rejected(4, R::WOULD_TAKE_LIQUIDITY));
  EXPECT_EQ(asks(), (Levels{{100, 5, 1}}));
}

TEST_F(HaltTest, HaltedSubmitDoesNotConsumeItsId) {
  two_sided();
  halt();
  const std::size_t known = eng.known_ids();
  EXPECT_EQ(limit(3, 9, BUY, 98, 4), rejected(3, R::INSTRUMENT_HALTED));
  EXPECT_EQ(eng.known_ids(), known);
  resume();
  EXPECT_EQ(limit(3, 9, BUY, 98, 4), (Events{Acc(3), Done(3, S::NEW, 0, 4)}));
  EXPECT_EQ(bids(), (Levels{{99, 3, 1}, {98, 4, 1}}));
}

// ---- modify and cancel ------------------------------------------------------

TEST_F(HaltTest, ModifyOnHaltedSymbolIsRejectedAndTheOrderKeepsItsPlace) {
  limit(1, 7, SELL, 100, 5);
  limit(2, 8, SELL, 100, 5);
  limit(3, 8, BUY, 98, 2);
  halt();
  // A reduce, a reprice that would cross the bid, and a malformed modify: the halt
  // answers first, and nothing moves.
  EXPECT_EQ(modify(1, 7, 100, 2), (Events{Rej(1, R::INSTRUMENT_HALTED)}));
  EXPECT_EQ(modify(1, 7, 98, 5), (Events{Rej(1, R::INSTRUMENT_HALTED)}));
  EXPECT_EQ(modify(1, 7, 100, 0), (Events{Rej(1, R::INSTRUMENT_HALTED)}));
  EXPECT_EQ(asks(), (Levels{{100, 10, 2}}));
  EXPECT_EQ(bids(), (Levels{{98, 2, 1}}));
  EXPECT_EQ(eng.order(1)->remaining, 5);
  resume();
  // Order 1 is still first at 100.
  EXPECT_EQ(limit(4, 9, BUY, 100, 6),
            (Events{Acc(4), Trd(1, 4, 7, 9, 100, 5, BUY, 0, 1), Trd(2, 4, 8, 9, 100, 1, BUY, 4, 0),
                    Done(4, S::FILLED, 6, 0)}));
}

TEST_F(HaltTest, ModifyOfForeignOrMissingOrderOnHaltedSymbolIsUnknown) {
  limit(1, 7, SELL, 100, 5);
  halt();
  // The lookup answers first, so a halted symbol cannot be used to probe for orders.
  EXPECT_EQ(modify(1, 8, 100, 2), (Events{Rej(1, R::UNKNOWN_ORDER)}));
  EXPECT_EQ(modify(99, 7, 100, 2), (Events{Rej(99, R::UNKNOWN_ORDER)}));
  EXPECT_EQ(modify(1, 7, 100, 2, 2), (Events{Rej(1, R::UNKNOWN_ORDER, 2)}));
  EXPECT_EQ(asks(), (Levels{{100, 5, 1}}));
}

TEST_F(HaltTest, CancelIsAllowedWhileHalted) {
  two_sided();
  halt();
  EXPECT_EQ(cancel(1, 7), (Events{Cxl(1, 5, CancelReason::USER), Done(1, S::CANCELLED, 0, 0)}));
  EXPECT_EQ(cancel(1, 7), (Events{Rej(1, R::UNKNOWN_ORDER)}));
  EXPECT_EQ(cancel(2, 9), (Events{Rej(2, R::UNKNOWN_ORDER)}));  // not account 9's
  EXPECT_EQ(asks(), Levels{});
  EXPECT_EQ(bids(), (Levels{{99, 3, 1}}));
  EXPECT_EQ(eng.trading_status(kSym), TS::HALTED);
}

// ---- halt, resume, other symbols --------------------------------------------

TEST_F(HaltTest, HaltAndResumeChangeNoRestingOrderAndEmitNothing) {
  two_sided();
  limit(3, 9, SELL, 100, 2);
  std::vector<OrderEntry> bids_before, asks_before, bids_after, asks_after;
  eng.l3(kSym, bids_before, asks_before);
  const std::uint64_t hash = eng.event_hash();
  sink.events.clear();
  EXPECT_TRUE(halt());
  EXPECT_TRUE(halt());  // halting a halted symbol is harmless
  eng.l3(kSym, bids_after, asks_after);
  ASSERT_EQ(asks_after.size(), 2u);
  EXPECT_EQ(asks_after[0].order_id, asks_before[0].order_id);
  EXPECT_EQ(asks_after[1].order_id, asks_before[1].order_id);
  EXPECT_EQ(bids_after.size(), bids_before.size());
  EXPECT_TRUE(resume());
  EXPECT_TRUE(sink.events.empty());
  EXPECT_EQ(eng.event_hash(), hash);
  EXPECT_EQ(asks(), (Levels{{100, 7, 2}}));
  EXPECT_EQ(bids(), (Levels{{99, 3, 1}}));
}

TEST_F(HaltTest, AfterResumeOrdersTradeNormally) {
  two_sided();
  halt();
  limit(3, 9, BUY, 100, 5);  // rejected
  resume();
  EXPECT_EQ(eng.trading_status(kSym), TS::TRADING);
  EXPECT_EQ(asks(), (Levels{{100, 5, 1}}));  // nothing traded at resume
  EXPECT_EQ(limit(3, 9, BUY, 100, 2),
            (Events{Acc(3), Trd(1, 3, 7, 9, 100, 2, BUY, 3, 0), Done(3, S::FILLED, 2, 0)}));
  EXPECT_EQ(modify(1, 7, 99, 3),
            (Events{Mod(1, 99, 3), Trd(2, 1, 8, 7, 99, 3, SELL, 0, 0), Done(1, S::FILLED, 5, 0)}));
  EXPECT_EQ(asks(), Levels{});
  EXPECT_EQ(bids(), Levels{});
}

TEST_F(HaltTest, HaltingOneSymbolLeavesOthersTrading) {
  limit(1, 7, SELL, 100, 5, TimeInForce::GTC, 1);
  limit(2, 7, SELL, 100, 5, TimeInForce::GTC, 2);
  halt(1);
  EXPECT_EQ(limit(3, 8, BUY, 100, 5, TimeInForce::GTC, 1), rejected(3, R::INSTRUMENT_HALTED, 1));
  EXPECT_EQ(limit(4, 8, BUY, 100, 5, TimeInForce::GTC, 2),
            (Events{Acc(4, 2), Trd(2, 4, 7, 8, 100, 5, BUY, 0, 0, 2), Done(4, S::FILLED, 5, 0, 2)}));
  EXPECT_EQ(eng.trading_status(1), TS::HALTED);
  EXPECT_EQ(eng.trading_status(2), TS::TRADING);
  EXPECT_EQ(asks(1), (Levels{{100, 5, 1}}));
  EXPECT_EQ(asks(2), Levels{});
}

TEST_F(HaltTest, UnseenSymbolIsTradingAndQueryCreatesNoBook) {
  EXPECT_EQ(eng.trading_status(42), TS::TRADING);
  EXPECT_EQ(eng.trading_status(5'000'000), TS::TRADING);  // beyond the dense range
  EXPECT_EQ(eng.symbol_count(), 0u);
}

TEST_F(HaltTest, SetTradingStatusCreatesTheBookLikeSetInstrument) {
  EXPECT_TRUE(eng.set_trading_status(42, TS::TRADING));
  EXPECT_TRUE(eng.set_trading_status(5'000'000, TS::HALTED));
  EXPECT_EQ(eng.symbol_count(), 2u);
  EXPECT_EQ(eng.trading_status(5'000'000), TS::HALTED);
  EXPECT_EQ(eng.instrument(42).tick_size, 1);
  EXPECT_EQ(limit(1, 7, BUY, 100, 1, TimeInForce::GTC, 5'000'000),
            rejected(1, R::INSTRUMENT_HALTED, 5'000'000));
}

TEST_F(HaltTest, InvalidStatusIsRefusedAndChangesNothing) {
  EXPECT_FALSE(eng.set_trading_status(kSym, static_cast<TS>(0)));
  EXPECT_FALSE(eng.set_trading_status(kSym, static_cast<TS>(3)));
  EXPECT_FALSE(eng.set_trading_status(kSym, static_cast<TS>(255)));
  EXPECT_EQ(eng.symbol_count(), 0u);  // not even a book
  halt();
  EXPECT_FALSE(eng.set_trading_status(kSym, static_cast<TS>(0)));
  EXPECT_EQ(eng.trading_status(kSym), TS::HALTED);
}

// ---- snapshot ---------------------------------------------------------------

// Little-endian bytes of a value, as the snapshot writes them.
template <class T>
void put(std::string& out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out.append(buf, sizeof(T));
}

// Header (magic, version, hash, book count) = 20 bytes, then the first book's symbol
// (4) and instrument (48): its status byte.
constexpr std::size_t kFirstStatusByte = 72;

TEST_F(HaltTest, SnapshotCarriesTheStatus) {
  two_sided();
  limit(3, 7, SELL, 200, 1, TimeInForce::GTC, 2);
  halt(1);
  const std::string snap = eng.snapshot();
  std::uint32_t version;
  std::memcpy(&version, snap.data() + 4, 4);
  EXPECT_EQ(version, 4u);  // 2 brought the status byte, 3 icebergs, 4 stops (stop_test.cc)
  EXPECT_EQ(snap[kFirstStatusByte], 2);  // symbol 1: HALTED

  EventCollector sink2;
  Engine other(sink2);
  other.restore(snap);
  EXPECT_EQ(other.snapshot(), snap);
  EXPECT_EQ(other.trading_status(1), TS::HALTED);
  EXPECT_EQ(other.trading_status(2), TS::TRADING);
  other.submit(NewOrder{4, 9, 1, BUY, OrderType::LIMIT, TimeInForce::GTC, 100, 5});
  EXPECT_EQ(sink2.events, rejected(4, R::INSTRUMENT_HALTED, 1));
  EXPECT_EQ(limit(4, 9, BUY, 100, 5, TimeInForce::GTC, 1), sink2.events);
  EXPECT_EQ(other.event_hash(), eng.event_hash());
}

TEST_F(HaltTest, Version1SnapshotRestoresEveryBookTrading) {
  // Built by hand in the version-1 layout: no status byte after the instrument.
  std::string v1("BRSE", 4);
  put<std::uint32_t>(v1, 1);
  put<std::uint64_t>(v1, 0x1234);
  put<std::uint32_t>(v1, 2);  // books
  for (SymbolId sym : {1u, 7u}) {
    put<std::uint32_t>(v1, sym);
    for (std::int64_t v : {std::int64_t{1}, std::int64_t{1}, std::int64_t{1}, kMaxQuantity,
                           std::int64_t{0}, std::int64_t{0}}) {
      put<std::int64_t>(v1, v);
    }
    put<std::uint32_t>(v1, 1);  // BUY: one order
    put<std::uint64_t>(v1, sym * 10);
    put<std::uint64_t>(v1, 7);
    put<std::int64_t>(v1, 100);
    put<std::int64_t>(v1, 5);
    put<std::int64_t>(v1, 0);
    put<std::uint8_t>(v1, 1);
    put<std::uint8_t>(v1, 0);
    put<std::uint32_t>(v1, 0);  // SELL: none
  }
  eng.restore(v1);
  EXPECT_EQ(eng.trading_status(1), TS::TRADING);
  EXPECT_EQ(eng.trading_status(7), TS::TRADING);
  EXPECT_EQ(eng.event_hash(), 0x1234u);
  EXPECT_EQ(bids(1), (Levels{{100, 5, 1}}));
  EXPECT_EQ(bids(7), (Levels{{100, 5, 1}}));
  // Written back as version 4: per book one status byte, the last trade price (i64) and
  // two stop counts (u32) more, and per order its display and shown quantity (two i64).
  const std::string v4 = eng.snapshot();
  EXPECT_EQ(v4.size(), v1.size() + 2 * (1 + 8 + 8) + 2 * 16);
  EXPECT_EQ(v4[4], 4);
  EXPECT_EQ(v4[kFirstStatusByte], 1);
  EXPECT_EQ(limit(11, 8, SELL, 100, 5, TimeInForce::GTC, 1),
            (Events{Acc(11, 1), Trd(10, 11, 7, 8, 100, 5, SELL, 0, 0, 1), Done(11, S::FILLED, 5, 0, 1)}));
}

TEST_F(HaltTest, RestoreRefusesAnInvalidStatus) {
  two_sided();
  halt();
  const std::string good = eng.snapshot();
  EventCollector sink2;
  Engine other(sink2);
  for (char bad : {'\0', '\3', '\xff'}) {
    std::string snap = good;
    snap[kFirstStatusByte] = bad;
    try {
      other.restore(snap);
      ADD_FAILURE() << "restored a status of " << static_cast<int>(bad);
    } catch (const std::invalid_argument& e) {
      EXPECT_STREQ(e.what(), "snapshot: invalid trading status");
    }
    EXPECT_EQ(other.live_orders(), 0u);  // empty, as if just constructed
    EXPECT_EQ(other.symbol_count(), 0u);
  }
  std::string v5 = good;
  v5[4] = 5;
  EXPECT_THROW(other.restore(v5), std::invalid_argument);
  other.restore(good);
  EXPECT_EQ(other.trading_status(kSym), TS::HALTED);
}

// ---- batch ------------------------------------------------------------------

using Command = Engine::Command;

// Submits, cancels and modifies over three symbols, with the status of a symbol
// flipped and mass cancels run between batches (the same calls at the same places on
// both engines): the batch must still emit exactly what one call per command does.
TEST(HaltBatch, BatchWithHaltsAndMassCancelsRunsAsOneCallPerCommand) {
  for (std::uint64_t seed = 1; seed <= 3; ++seed) {
    std::mt19937_64 rng(seed);
    std::vector<Command> cmds;
    OrderId next_id = 1;
    for (int i = 0; i < 20'000; ++i) {
      const SymbolId sym = 1 + static_cast<SymbolId>(rng() % 3);
      const Side side = rng() % 2 ? Side::BUY : Side::SELL;
      const Price px = 1000 + static_cast<Price>(rng() % 30) - (side == Side::BUY ? 16 : 14);
      NewOrder o{0, 1 + rng() % 4, sym, side, OrderType::LIMIT, TimeInForce::GTC, px,
                 static_cast<Quantity>(1 + rng() % 20)};
      const unsigned r = static_cast<unsigned>(rng() % 100);
      if (r < 50) {
        o.order_id = next_id++;
        if (r < 4) o.tif = TimeInForce::IOC;
        if (r == 4) o.type = OrderType::MARKET, o.tif = TimeInForce::IOC, o.price = 0;
        cmds.push_back(Command{Command::Op::SUBMIT, o});
      } else {
        o.order_id = 1 + rng() % (next_id + 2);
        cmds.push_back(Command{r < 70 ? Command::Op::CANCEL : Command::Op::MODIFY, o});
      }
    }
    EventCollector one_sink, batch_sink;
    Engine one(one_sink, 16, 500), batched(batch_sink, 16, 500);
    std::size_t at = 0, most_live = 0;
    for (std::size_t size = 1; at < cmds.size(); size = size % 37 + 1) {
      most_live = std::max(most_live, one.live_orders());
      const std::size_t take = std::min(size, cmds.size() - at);
      for (std::size_t k = at; k < at + take; ++k) one.execute(cmds[k]);
      batched.execute(cmds.data() + at, take);
      at += take;
      const unsigned r = static_cast<unsigned>(rng() % 10);
      if (r < 3) {
        const SymbolId sym = 1 + static_cast<SymbolId>(rng() % 3);
        const TS status = rng() % 2 ? TS::HALTED : TS::TRADING;
        one.set_trading_status(sym, status);
        batched.set_trading_status(sym, status);
      } else if (r == 3) {
        const AccountId acct = 1 + rng() % 4;
        const std::optional<SymbolId> sym =
            rng() % 2 ? std::optional<SymbolId>(1 + rng() % 3) : std::nullopt;
        ASSERT_EQ(one.cancel_all(acct, sym), batched.cancel_all(acct, sym));
      }
    }
    ASSERT_EQ(one_sink.events.size(), batch_sink.events.size()) << "seed " << seed;
    EXPECT_TRUE(one_sink.events == batch_sink.events) << "seed " << seed;
    EXPECT_EQ(one.event_hash(), batched.event_hash());
    EXPECT_EQ(one.snapshot(), batched.snapshot());
    // The stream did exercise both features.
    std::size_t halted = 0, mass = 0;
    for (const Event& e : one_sink.events) {
      halted += e.kind == EventKind::REJECTED &&
                e.reason == static_cast<std::uint8_t>(R::INSTRUMENT_HALTED);
      mass += e.kind == EventKind::CANCELLED &&
              e.reason == static_cast<std::uint8_t>(CancelReason::MASS_CANCEL);
    }
    EXPECT_GT(halted, 1000u);
    EXPECT_GT(mass, 100u);
    EXPECT_GT(most_live, 50u);  // books deep enough to search, before mass cancels thin them
  }
}

}  // namespace
}  // namespace bourse::engine::testing
