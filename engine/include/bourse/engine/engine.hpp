#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "bourse/engine/event.hpp"
#include "bourse/engine/order_book.hpp"
#include "bourse/engine/order_store.hpp"
#include "bourse/engine/types.hpp"

namespace bourse::engine {

struct OrderView {
  SymbolId symbol_id;
  Side side;
  Price price;
  Quantity remaining;  // open quantity (leaves), an iceberg's hidden part included
  Quantity filled;
  AccountId account_id;
  Quantity visible;           // what the book shows of it (remaining, but for an iceberg)
  Quantity display_quantity;  // an iceberg's; 0 for an ordinary order
};

struct SnapshotReader;  // engine.cpp

struct TopOfBook {
  std::optional<LevelView> bid;
  std::optional<LevelView> ask;
};

// The matching engine for many symbols. Single-threaded: one caller at a time.
//
// Every command reports its outcome to the handler, synchronously, before the
// call returns. The handler must not call back into the engine or throw.
//
// submit: REJECTED + DONE(REJECTED), or
//         ACCEPTED, [TRADE...], [CANCELLED(IOC_REMAINDER|MARKET_REMAINDER|FOK_UNFILLABLE)],
//         DONE(NEW|PARTIALLY_FILLED|FILLED|CANCELLED)
// cancel: CANCELLED(USER) + DONE(CANCELLED), or REJECTED(UNKNOWN_ORDER) alone.
// modify: MODIFIED, [TRADE...], [CANCELLED(SELF_TRADE_PREVENTED)], DONE -- or
//         REJECTED(reason) alone (the order is left exactly as it was).
// cancel_all: per cancelled order, ascending order_id, CANCELLED(MASS_CANCEL) +
//         DONE(CANCELLED); nothing if the account has no resting order there.
// On a HALTED symbol, submit and modify are rejected INSTRUMENT_HALTED (a submit after
// validate_full, a modify after the UNKNOWN_ORDER lookup); cancels work.
// With self-trade prevention CANCEL_RESTING/BOTH, a submit or modify may also
// emit CANCELLED(SELF_TRADE_PREVENTED) + DONE(CANCELLED) for a *resting* order
// (its own order_id) before the incoming order's final DONE, which is always
// the last event of the command.
//
// Icebergs (NewOrder::display_quantity > 0) show one slice at a time; a filled slice
// is refreshed at the back of its level, with no event of its own (engine/README.md).
//
// Stops (NewOrder::stop_price > 0) are accepted with ACCEPTED + DONE(NEW) and wait off
// the book. When an order's trades reach a stop's price, the stop enters after that
// order's events: TRIGGERED, then a submit's events without ACCEPTED; the stops its own
// trades reach follow (a cascade), all within the command (engine/README.md).
//
// A symbol's book is created by the first accepted order for it or by
// set_instrument / set_reference_price / set_trading_status; queries on a symbol
// never seen return empty results (and trading_status TRADING).
class Engine {
 public:
  // `expected_orders` pre-sizes the order pool and id index, avoiding rehash
  // pauses while below it. An accepted order_id is refused as DUPLICATE_ORDER_ID
  // while its order works and until `id_window` more orders are done after it;
  // then it is forgotten, so memory does not grow with the orders ever seen.
  explicit Engine(EventHandler& handler, std::size_t expected_orders = 1024,
                  std::size_t id_window = OrderStore::kDefaultIdWindow);
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  void submit(const NewOrder& order);
  void cancel(const CancelOrder& cancel);
  void modify(const ModifyOrder& modify);

  // One command of a batch. `op` says which of `order`'s fields count: all (SUBMIT);
  // order_id, account_id, symbol_id (CANCEL); and price, quantity (MODIFY).
  struct Command {
    enum class Op : std::uint8_t { SUBMIT = 1, CANCEL = 2, MODIFY = 3 };
    Op op;
    NewOrder order;
  };
  // One command: submit, cancel or modify, as its op says.
  void execute(const Command& command);
  // Runs the commands in order, exactly as execute(command) on each would (same events,
  // same state), but fetches what the next few will touch while the current one runs:
  // with books out of cache, a command alone waits on one miss after another.
  void execute(const Command* commands, std::size_t count);

  // Sets a symbol's rules (creating its book); applies to later commands only.
  // Returns false (and changes nothing) if !valid(inst).
  bool set_instrument(SymbolId symbol, const Instrument& inst);
  // Returns false if price is outside [0, kMaxPrice].
  bool set_reference_price(SymbolId symbol, Price price);
  Instrument instrument(SymbolId symbol) const;

  // Halts or resumes a symbol (creating its book, as set_instrument does). While it is
  // HALTED, submits and modifies on it are rejected INSTRUMENT_HALTED; cancels and
  // cancel_all still work; resting orders are not touched, and nothing trades when it
  // resumes until a command crosses. Emits no event. Returns false (and changes
  // nothing) if `status` is not an enumerator.
  bool set_trading_status(SymbolId symbol, TradingStatus status);
  // TRADING for a symbol never seen (no book is created).
  TradingStatus trading_status(SymbolId symbol) const;

  // Mass cancel: cancels every resting order of `account` (on `symbol` only, if
  // given), in ascending order_id, each exactly like a user cancel but for its reason:
  // CANCELLED(MASS_CANCEL, remaining) + DONE(CANCELLED, filled, 0), with the order's
  // own symbol_id. Returns how many it cancelled (0: no event at all). Works while
  // halted. Cost: a walk over the resting orders of the book (or of every book, with
  // no symbol), O(resting orders), plus sorting and removing the account's ones; no
  // index by account is kept, because it would cost every submit and cancel.
  std::size_t cancel_all(AccountId account, std::optional<SymbolId> symbol);

  // The waiting stops of one symbol, per side in the order they would enter.
  void stops(SymbolId symbol, std::vector<StopOrder>& buys, std::vector<StopOrder>& sells) const;
  // The price of the symbol's latest trade; 0 if it never traded.
  Price last_trade_price(SymbolId symbol) const;

  // Every resting order of one symbol, per side in priority order.
  void l3(SymbolId symbol, std::vector<OrderEntry>& bids, std::vector<OrderEntry>& asks) const;

  // The whole state as bytes: books (with priority), instrument rules, trading
  // status, event hash. Ids of done orders are not included: after restore() only
  // live ids are known (so a done id could be accepted again), as after the id window.
  std::string snapshot() const;
  // Replaces the state with a snapshot's (format version 3; or version 2, whose orders
  // are all ordinary; or version 1, also with every book TRADING). Throws
  // std::invalid_argument on malformed data (the engine is then empty, as if just
  // constructed).
  void restore(std::string_view data);

  std::uint64_t event_hash() const { return out_.hash; }

  std::optional<OrderView> order(OrderId id) const;
  TopOfBook top(SymbolId symbol) const;
  void depth(SymbolId symbol, std::size_t max_levels, std::vector<LevelView>& bids,
             std::vector<LevelView>& asks) const;

  std::size_t live_orders() const { return store_.live(); }
  // Ids the engine refuses as duplicates now: the working orders' and the window's.
  std::size_t known_ids() const { return store_.known_ids(); }
  std::size_t symbol_count() const { return books_.size(); }

 private:
  // Hashes every event, then forwards it to the user's handler.
  class Emitter final : public EventHandler {
   public:
    explicit Emitter(EventHandler& h) : handler(h) {}
    // Inlined where the engine emits (it calls this final class directly), so the
    // hash reads the event's fields from registers, not back from memory.
    [[gnu::always_inline]] void on_event(const Event& e) override {
      hash = hash_event(hash, e);
      handler.on_event(e);
    }
    EventHandler& handler;
    std::uint64_t hash = kEventHashSeed;
  };

  OrderBook& book_for(SymbolId symbol);
  // The book of `symbol`, or nullptr; every command looks its book up here.
  OrderBook* find_book(SymbolId symbol) const {
    if (symbol < kDenseSymbols) return symbol < dense_books_.size() ? dense_books_[symbol] : nullptr;
    auto it = books_.find(symbol);
    return it == books_.end() ? nullptr : it->second.get();
  }
  // An accepted order (a submit's, or a triggered stop's) enters: the FOK check, then
  // execute(). Returns it as the taker it was (last_price 0: it traded nothing).
  Taker enter(OrderBook& book, const NewOrder& cmd, OrderIndex node);
  // Matches an accepted limit/market taker and rests or finishes it in `node`, the
  // store's node for its id.
  void execute(OrderBook& book, Taker& taker, const NewOrder& cmd, OrderIndex node);
  void reject(OrderId id, SymbolId symbol, RejectReason why);
  // The rest of a submit with a stop price (checked as far as the instrument rules).
  [[gnu::noinline]] void submit_stop(const NewOrder& cmd, OrderBook* book, RejectReason why);
  // A cancel or modify of an id that is not resting: a waiting stop's, else false.
  [[gnu::noinline]] bool cancel_stop(const CancelOrder& cmd);
  [[gnu::noinline]] bool modify_stop(const ModifyOrder& cmd);
  // The order that just matched as `taker` traded: enter the stops its trades reached,
  // and those theirs reach, until none is left.
  [[gnu::noinline]] void run_stops(OrderBook& book, const Taker& taker);
  // The end of an order that may not rest or be filled (FOK unfillable).
  void kill_unfillable(const NewOrder& cmd, OrderIndex node);
  void restore_unchecked(std::string_view data);
  void restore_stops(SnapshotReader& r, OrderBook& book);

  Emitter out_;
  std::size_t expected_orders_;
  std::size_t id_window_;
  OrderStore store_;
  std::unordered_map<SymbolId, std::unique_ptr<OrderBook>> books_;  // owns every book
  // Books of the symbol ids below kDenseSymbols (the services number symbols densely
  // from 1), indexed by id: one load per lookup, where the map's hashing and node
  // chasing were a tenth of the engine's time with 10,000 books. Sized to the largest
  // such id seen.
  static constexpr SymbolId kDenseSymbols = 1u << 20;
  std::vector<OrderBook*> dense_books_;
  std::deque<StopOrder> triggered_;  // the stops waiting to enter, in order (run_stops)
};

}  // namespace bourse::engine
