#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "bourse/engine/event.hpp"
#include "bourse/engine/order_store.hpp"
#include "bourse/engine/stop_book.hpp"
#include "bourse/engine/types.hpp"

namespace bourse::engine {

struct LevelView {
  Price price;
  Quantity quantity;  // sum of the shown quantity (icebergs: their slice; saturates at INT64_MAX)
  std::uint32_t order_count;
};

// One resting order in a level-3 (order by order) view: what the book shows, and what
// it does not (an iceberg's hidden quantity and display quantity) beside it.
struct OrderEntry {
  OrderId order_id;
  AccountId account_id;
  Price price;
  Quantity remaining;  // shown: the whole open quantity, an iceberg's current slice
  Quantity filled;
  SelfTradePrevention stp;
  bool post_only;
  Quantity hidden = 0;            // iceberg: open quantity not shown (remaining + hidden = leaves)
  Quantity display_quantity = 0;  // iceberg: size of a fresh slice; 0 for an ordinary order
};

// The incoming (aggressing) side of a match.
struct Taker {
  OrderId order_id;
  AccountId account_id;
  Side side;
  Price limit;  // worst acceptable price; see any_price()
  Quantity remaining;
  Quantity filled;
  SelfTradePrevention stp = SelfTradePrevention::CANCEL_INCOMING;
  bool stp_stopped = false;  // set by match(): the remainder must be cancelled (STP)
  // The prices of its first and last trade (0: it has not traded): the path the last
  // trade price took, which triggers stops.
  Price first_price = 0;
  Price last_price = 0;

  // Limit that crosses every resting price (for market orders).
  static Price any_price(Side side);
};

// One symbol's book: two sides of price levels, each level a FIFO of orders
// whose nodes live in the shared OrderStore.
//
// Levels are kept in a vector sorted so that the *best* level is at the back:
// matching consumes and erases levels at the back (O(1)), and most inserts and
// cancels happen near the top of book, i.e. near the back, so the memmove on
// insert/erase stays short.
//
// A side is kept in one of two forms, by how spread its prices are:
// - a ladder: one level per price (price unit, not tick) from the first level's to the
//   best, empty levels (head == kNoOrder) included, so a price's level is found by a
//   subtraction and an order resting at a price inside that range moves no level.
//   Always, a ladder has at most kLadderMaxLevels levels with orders and spans at most
//   kLadderFree prices plus twice that count (at most 542 levels, 26 KiB): a rest that
//   would break that, or a removal that leaves the ladder too thin, turns the side
//   sparse. So a ladder's walks (depth, the FOK check) and its changes of form cost at
//   most a constant, and its memory is within a constant of its orders.
// - sparse: only levels with orders, found by a search, inserted and erased in place.
//   A sparse side becomes a ladder again when a new level leaves it within the bounds.
// Either way the best level has orders (empty levels at the back are dropped at once),
// so the top of book, matching and the crossing checks read the back; empty levels
// hold no order, and depth() skips them.
class alignas(64) OrderBook {
 public:
  OrderBook(SymbolId symbol, OrderStore& store);

  SymbolId symbol() const { return symbol_; }
  Instrument& instrument() { return instrument_; }
  const Instrument& instrument() const { return instrument_; }
  TradingStatus trading_status() const { return status_; }
  void set_trading_status(TradingStatus status) { status_ = status; }
  // Submits and modifies test this on the book they load anyway: one predictable branch.
  bool halted() const { return status_ == TradingStatus::HALTED; }

  // The price of the symbol's latest trade (0: none yet); stops trigger on its path.
  Price last_trade_price() const { return last_trade_; }
  void set_last_trade_price(Price price) { last_trade_ = price; }
  // Would a stop on `side` at `stop` trigger at once on the last trade price?
  bool stop_reached(Side side, Price stop) const {
    return last_trade_ != 0 && (side == Side::BUY ? stop <= last_trade_ : stop >= last_trade_);
  }
  // The waiting stops, made on first use; has_stops() is the one test a trade pays.
  bool has_stops() const { return stops_ != nullptr && !stops_->empty(); }
  StopBook* stop_book() const { return stops_.get(); }
  StopBook& stops() {
    if (stops_ == nullptr) stops_ = std::make_unique<StopBook>();
    return *stops_;
  }

  // Would a taker on `taker_side` with this limit trade with anything now?
  bool crosses_any(Side taker_side, Price limit) const;

  // How much of `wanted` the taker would get filled right now (never more than
  // `wanted`), with self-trade prevention applied as match() would apply it and
  // icebergs' hidden quantity counted as match() would reach it through refreshes.
  // Used for the FOK all-or-nothing check, before anything changes.
  Quantity fillable(const Taker& taker, Quantity wanted) const;

  // Trades the taker against the opposite side in price-time order while it
  // crosses, emitting one TRADE per fill; filled makers are retired. An iceberg
  // trades its shown slice; a filled slice with hidden quantity behind it is
  // refreshed (next slice shown, order moved to the back of its level) and the
  // taker goes on through the level. Resting orders of the taker's account are
  // handled per taker.stp (maker cancels are emitted here; a stopped taker has
  // stp_stopped set).
  template <class Out>
  void match(Taker& taker, Out& out);

  // Appends a resting order (already in the store) to the tail of its level.
  void rest(OrderIndex idx);

  // Unlinks a resting order from its level (the caller retires it).
  void remove(OrderIndex idx);

  // Lowers a resting order's open quantity in place (keeps its place). An iceberg
  // loses hidden quantity first, then shown quantity: its slice never grows.
  void reduce(OrderIndex idx, Quantity new_remaining);

  // Up to `max_levels` levels of one side, best first, appended to `out`.
  void depth(Side side, std::size_t max_levels, std::vector<LevelView>& out) const;

  // Every order of one side in priority order (best level first, FIFO).
  void orders(Side side, std::vector<OrderEntry>& out) const;

  // Appends the pool indices of `account`'s resting orders (both sides, in no
  // particular order) to `out`: a walk over every resting order of the book.
  void orders_of(AccountId account, std::vector<OrderIndex>& out) const;

  // Cache hints for a command about to run on this book (Engine::execute over a batch),
  // in two steps, the second reading only what the first fetched. prefetch_ends: the
  // lines the level search starts from on `side` (its first level and its best two)
  // and the best level of the other side, which the command may trade with.
  // prefetch_from: on a ladder, the level of `price`; on a sparse side, the levels from
  // where `price` should sit to the best, which the command searches and which an insert
  // or erase there moves.
  void prefetch_ends(Side side) const;
  void prefetch_from(Side side, Price price) const;
  // prefetch_from for an order that leaves `from` and rests again at `to` (a modify).
  void prefetch_from(Side side, Price from, Price to) const;
  // The oldest order of the other side's best level, if a taker on `side` with this
  // limit would trade with it (read from the line prefetch_ends fetched).
  void prefetch_maker(Side side, Price limit) const;

  // Levels with orders (a ladder's empty levels do not count).
  std::size_t level_count(Side side) const { return ladder(side) ? ladder_levels(side) : levels(side).size(); }
  // Whether a side is a ladder now, else sparse; see the class comment.
  bool ladder(Side side) const { return (forms_ & form_bit(side)) != 0; }
  // The side's levels, a ladder's empty ones included (what its memory holds).
  std::size_t level_slots(Side side) const { return levels(side).size(); }
  bool empty() const { return bids_.empty() && asks_.empty(); }

 private:
  // GCC/Clang extension; level totals are sums over many orders and must not wrap.
  __extension__ typedef __int128 Total;

  struct Level {
    Price price;
    OrderIndex head;  // oldest order: matched first
    OrderIndex tail;  // newest order
    std::uint32_t count;
    Total total;
  };

  // A ladder has at most kLadderMaxLevels levels with orders (the count is a byte) and
  // spans at most kLadderFree prices plus twice that count.
  static constexpr std::size_t kLadderFree = 32;
  static constexpr std::size_t kLadderMaxLevels = 255;

  std::vector<Level>& levels(Side side) { return side == Side::BUY ? bids_ : asks_; }
  const std::vector<Level>& levels(Side side) const {
    return side == Side::BUY ? bids_ : asks_;
  }
  static std::uint8_t form_bit(Side side) { return side == Side::BUY ? 1 : 2; }
  void set_ladder(Side side, bool ladder) {
    forms_ = static_cast<std::uint8_t>(ladder ? forms_ | form_bit(side) : forms_ & ~form_bit(side));
  }
  // A ladder's levels with orders (kept only while the side is a ladder).
  std::uint8_t& ladder_levels(Side side) { return side == Side::BUY ? bid_levels_ : ask_levels_; }
  std::size_t ladder_levels(Side side) const { return side == Side::BUY ? bid_levels_ : ask_levels_; }
  // Within a ladder's bounds: `count` levels with orders over `span` prices.
  static bool fits_ladder(std::size_t span, std::size_t count) {
    return count <= kLadderMaxLevels && span <= kLadderFree + 2 * count;
  }
  // Where `price` lies from a side's `first` level, counted in price units towards the
  // best: 1 for the next price, -1 for the one before the first. Both must be valid
  // prices (0 < price <= kMaxPrice), so the difference cannot overflow.
  static Price steps(Side side, Price first, Price price) {
    return side == Side::BUY ? price - first : first - price;
  }
  // The price `n` steps from `first` towards the best (steps' inverse).
  static Price stepped(Side side, Price first, Price n) { return side == Side::BUY ? first + n : first - n; }
  static Level empty_level(Price price) { return Level{price, kNoOrder, kNoOrder, 0, 0}; }

  // Position of `price` in the side's vector: either its level or where it
  // would be inserted.
  std::size_t position(Side side, Price price) const;

  // The index of the level an order at `price` joins, made if need be: a ladder's empty
  // level is counted, a ladder grows to a price beyond its ends, or turns sparse where
  // that would break its bounds; a sparse side inserts the level.
  std::size_t level_for(Side side, Price price);
  // A sparse side's level for `price`, inserted if need be; the side then becomes a
  // ladder if its range allows. Returns where the level is.
  std::size_t sparse_level_for(Side side, Price price);
  // A ladder turns sparse: its empty levels go. Off the hot path.
  [[gnu::noinline]] void make_sparse(Side side);
  // The level at `pos` has emptied (its last order unlinked). A sparse side erases it; a
  // ladder keeps it, uncounted. Either way an emptied best goes, with the empty levels
  // behind it, so that the best has orders again; an empty side starts again as a ladder,
  // and one left too thin turns sparse. Inline: matching calls it for every level it empties.
  void emptied(Side side, std::size_t pos) {
    std::vector<Level>& v = levels(side);
    const bool is_ladder = ladder(side);
    if (is_ladder) --ladder_levels(side);
    if (pos + 1 == v.size()) {
      do {
        v.pop_back();
      } while (is_ladder && !v.empty() && v.back().head == kNoOrder);
    } else if (!is_ladder) {
      v.erase(v.begin() + static_cast<std::ptrdiff_t>(pos));
    }
    if (v.empty()) {
      set_ladder(side, true);
    } else if (is_ladder && !fits_ladder(v.size(), ladder_levels(side))) {
      make_sparse(side);
    }
  }

  void unlink(Level& level, OrderIndex idx);
  // Links a node at the tail of the level (count + 1; the total is the caller's).
  void append(Level& level, OrderIndex idx);
  // An iceberg's slice is filled and it has hidden quantity: show the next slice and
  // move it to the back of its level (it loses its time priority). Off the hot path.
  [[gnu::noinline]] void refresh(Level& level, OrderIndex idx);

  // Two cache lines, the book aligned to them: the first holds what a submit checks (the
  // status sits in the padding between the symbol and the instrument), the second what
  // matching moves (the levels), and beside them what a trade updates and tests (the last
  // trade price, the stops). Put after the levels, these two were a third line to fetch
  // with books out of cache (10,000 symbols: a tenth slower).
  SymbolId symbol_;
  TradingStatus status_ = TradingStatus::TRADING;
  // The sides' forms and their ladders' counts, in the padding before the instrument.
  std::uint8_t forms_ = 3;  // bit 1: the bids are a ladder, bit 2: the asks
  std::uint8_t bid_levels_ = 0;
  std::uint8_t ask_levels_ = 0;
  Instrument instrument_;
  OrderStore& store_;
  Price last_trade_ = 0;
  std::unique_ptr<StopBook> stops_;
  std::vector<Level> bids_;  // ascending price: best (highest) at back
  std::vector<Level> asks_;  // descending price: best (lowest) at back
};
static_assert(sizeof(OrderBook) == 128, "two cache lines");

inline Side opposite(Side s) { return s == Side::BUY ? Side::SELL : Side::BUY; }

// Does a taker on `taker_side` with this limit trade against a resting price?
inline bool crosses(Side taker_side, Price limit, Price resting) {
  return taker_side == Side::BUY ? resting <= limit : resting >= limit;
}

template <class Out>
void OrderBook::match(Taker& taker, Out& out) {
  std::vector<Level>& opp = levels(opposite(taker.side));
  while (taker.remaining > 0 && !opp.empty()) {
    Level& level = opp.back();
    if (!crosses(taker.side, taker.limit, level.price)) break;
    while (taker.remaining > 0 && level.head != kNoOrder) {
      const OrderIndex maker_idx = level.head;
      Order& maker = store_.at(maker_idx);
      if (maker.account_id == taker.account_id) {
        // Self-trade prevention: never a trade between an account and itself.
        if (taker.stp != SelfTradePrevention::CANCEL_INCOMING) {
          out.on_event(Event::cancelled(maker.order_id, symbol_, maker.remaining,
                                        CancelReason::SELF_TRADE_PREVENTED));
          out.on_event(Event::done(maker.order_id, symbol_, OrderStatus::CANCELLED,
                                   maker.filled, 0));
          level.total -= maker.visible();
          unlink(level, maker_idx);
          store_.retire(maker_idx);
        }
        if (taker.stp != SelfTradePrevention::CANCEL_RESTING) {
          taker.stp_stopped = true;
          break;
        }
        continue;
      }
      // Only the shown quantity trades (an ordinary order's hidden is 0: all of it).
      const Quantity shown = maker.visible();
      const Quantity q = taker.remaining < shown ? taker.remaining : shown;
      maker.remaining -= q;
      maker.filled += q;
      taker.remaining -= q;
      taker.filled += q;
      level.total -= q;
      // maker_remaining is the maker's whole open quantity, hidden included.
      out.on_event(Event::trade(symbol_, maker.order_id, taker.order_id, maker.account_id,
                                taker.account_id, level.price, q, taker.side,
                                maker.remaining, taker.remaining));
      if (taker.first_price == 0) taker.first_price = level.price;
      taker.last_price = level.price;
      if (maker.remaining == maker.hidden) {  // nothing shown is left
        if (__builtin_expect(maker.hidden == 0, 1)) {
          unlink(level, maker_idx);
          store_.retire(maker_idx);
        } else {
          refresh(level, maker_idx);
        }
      }
    }
    if (level.head == kNoOrder) emptied(opposite(taker.side), opp.size() - 1);
    if (taker.stp_stopped) break;
  }
}

}  // namespace bourse::engine
