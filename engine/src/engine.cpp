#include "bourse/engine/engine.hpp"

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>

namespace bourse::engine {

Engine::Engine(EventHandler& handler, std::size_t expected_orders, std::size_t id_window)
    : out_(handler),
      expected_orders_(expected_orders),
      id_window_(id_window),
      store_(expected_orders, id_window) {}

OrderBook& Engine::book_for(SymbolId symbol) {
  if (OrderBook* book = find_book(symbol)) return *book;
  std::unique_ptr<OrderBook>& slot = books_[symbol];
  slot = std::make_unique<OrderBook>(symbol, store_);
  if (symbol < kDenseSymbols) {
    if (symbol >= dense_books_.size()) dense_books_.resize(symbol + 1, nullptr);
    dense_books_[symbol] = slot.get();
  }
  return *slot;
}

void Engine::reject(OrderId id, SymbolId symbol, RejectReason why) {
  out_.on_event(Event::rejected(id, symbol, why));
  out_.on_event(Event::done(id, symbol, OrderStatus::REJECTED, 0, 0));
}

void Engine::submit(const NewOrder& cmd) {
  RejectReason why = validate_full(cmd);
  OrderBook* book = nullptr;
  if (why == RejectReason::NONE) {
    book = find_book(cmd.symbol_id);
    // A halted symbol has a book (set_trading_status made it). The halt wins over the
    // checks that depend on the symbol's state, so while halted every well-formed
    // submit gets the same answer.
    if (book != nullptr) {
      why = book->halted() ? RejectReason::INSTRUMENT_HALTED
                           : check(book->instrument(), cmd.price, cmd.quantity, /*check_min=*/true);
      // An iceberg's slices are on the lot too (after the quantity's own rules).
      if (cmd.display_quantity != 0 && why == RejectReason::NONE &&
          book->instrument().lot_size != 1 && cmd.display_quantity % book->instrument().lot_size != 0) {
        why = RejectReason::INVALID_DISPLAY_QUANTITY;
      }
    }
  }
  if (__builtin_expect(cmd.stop_price != 0, 0)) {
    submit_stop(cmd, book, why);
    return;
  }
  if (why == RejectReason::NONE && store_.known(cmd.order_id)) {
    why = RejectReason::DUPLICATE_ORDER_ID;
  }
  if (why == RejectReason::NONE && cmd.post_only && book != nullptr &&
      book->crosses_any(cmd.side, cmd.price)) {
    why = RejectReason::WOULD_TAKE_LIQUIDITY;
  }
  if (why != RejectReason::NONE) {
    reject(cmd.order_id, cmd.symbol_id, why);
    return;
  }

  // From here on the id is taken, whatever happens to the order.
  const OrderIndex node = store_.accept(cmd.order_id);
  out_.on_event(Event::accepted(cmd.order_id, cmd.symbol_id));
  if (book == nullptr) book = &book_for(cmd.symbol_id);
  const Taker taker = enter(*book, cmd, node);
  if (__builtin_expect(taker.last_price != 0, 0) && book->has_stops()) run_stops(*book, taker);
}

Taker Engine::enter(OrderBook& book, const NewOrder& cmd, OrderIndex node) {
  Taker taker{cmd.order_id,
              cmd.account_id,
              cmd.side,
              cmd.type == OrderType::MARKET ? Taker::any_price(cmd.side) : cmd.price,
              cmd.quantity,
              0,
              cmd.stp};
  // All-or-nothing is decided before any fill (and before any self-trade
  // cancel), so a killed FOK leaves no trace in the book.
  if (cmd.tif == TimeInForce::FOK && book.fillable(taker, cmd.quantity) < cmd.quantity) {
    kill_unfillable(cmd, node);
    return taker;  // traded nothing
  }
  execute(book, taker, cmd, node);
  return taker;
}

void Engine::kill_unfillable(const NewOrder& cmd, OrderIndex node) {
  out_.on_event(Event::cancelled(cmd.order_id, cmd.symbol_id, cmd.quantity,
                                 CancelReason::FOK_UNFILLABLE));
  out_.on_event(Event::done(cmd.order_id, cmd.symbol_id, OrderStatus::CANCELLED, 0, 0));
  store_.finish(node);
}

void Engine::submit_stop(const NewOrder& cmd, OrderBook* book, RejectReason why) {
  if (why == RejectReason::NONE && book != nullptr) {
    const Price tick = book->instrument().tick_size;
    if (tick != 1 && cmd.stop_price % tick != 0) why = RejectReason::PRICE_NOT_ON_TICK;
  }
  if (why == RejectReason::NONE && store_.known(cmd.order_id)) why = RejectReason::DUPLICATE_ORDER_ID;
  // A stop whose trigger the market has passed already would enter at once: refused, so
  // that a stop is always an order for a price move still to come.
  if (why == RejectReason::NONE && book != nullptr && book->stop_reached(cmd.side, cmd.stop_price)) {
    why = RejectReason::STOP_WOULD_TRIGGER;
  }
  if (why != RejectReason::NONE) {
    reject(cmd.order_id, cmd.symbol_id, why);
    return;
  }
  const OrderIndex node = store_.accept(cmd.order_id);
  out_.on_event(Event::accepted(cmd.order_id, cmd.symbol_id));
  if (book == nullptr) book = &book_for(cmd.symbol_id);
  book->stops().add(StopOrder{cmd.order_id, cmd.account_id, cmd.stop_price, cmd.price, cmd.quantity,
                              cmd.display_quantity, node, cmd.side, cmd.type, cmd.tif, cmd.stp});
  out_.on_event(Event::done(cmd.order_id, cmd.symbol_id, OrderStatus::NEW, 0, cmd.quantity));
}

void Engine::run_stops(OrderBook& book, const Taker& taker) {
  StopBook& stops = book.stops();
  stops.trigger(taker.side, taker.first_price, taker.last_price, triggered_);
  while (!triggered_.empty()) {
    const StopOrder s = triggered_.front();
    triggered_.pop_front();
    out_.on_event(Event::triggered(s.order_id, book.symbol(), s.stop_price, s.quantity));
    // It enters as the order it describes, with the trigger as its time.
    const NewOrder cmd{s.order_id, s.account_id, book.symbol(), s.side,  s.type,
                       s.tif,      s.price,      s.quantity,    false,   s.stp,
                       s.display_quantity};
    const Taker t = enter(book, cmd, s.node);
    if (t.last_price != 0 && !stops.empty()) stops.trigger(t.side, t.first_price, t.last_price, triggered_);
  }
}

bool Engine::cancel_stop(const CancelOrder& cmd) {
  OrderBook* book = find_book(cmd.symbol_id);
  StopBook* stops = book != nullptr ? book->stop_book() : nullptr;
  const StopOrder* s = stops != nullptr ? stops->find(cmd.order_id) : nullptr;
  if (s == nullptr || s->account_id != cmd.account_id) return false;
  const StopOrder gone = stops->take(cmd.order_id);
  store_.finish(gone.node);
  out_.on_event(Event::cancelled(gone.order_id, cmd.symbol_id, gone.quantity, CancelReason::USER));
  out_.on_event(Event::done(gone.order_id, cmd.symbol_id, OrderStatus::CANCELLED, 0, 0));
  return true;
}

bool Engine::modify_stop(const ModifyOrder& cmd) {
  OrderBook* book = find_book(cmd.symbol_id);
  StopBook* stops = book != nullptr ? book->stop_book() : nullptr;
  StopOrder* s = stops != nullptr ? stops->find(cmd.order_id) : nullptr;
  if (s == nullptr || s->account_id != cmd.account_id) return false;
  const bool limit = s->type == OrderType::LIMIT;
  const Price stop = cmd.stop_price != 0 ? cmd.stop_price : s->stop_price;
  RejectReason why = RejectReason::NONE;
  if (book->halted()) {
    why = RejectReason::INSTRUMENT_HALTED;
  } else if (cmd.quantity <= 0 || cmd.quantity > kMaxQuantity) {
    why = RejectReason::INVALID_QUANTITY;
  } else if (limit ? cmd.price <= 0 || cmd.price > kMaxPrice : cmd.price != 0) {
    why = RejectReason::INVALID_PRICE;
  } else if (cmd.stop_price < 0 || cmd.stop_price > kMaxPrice) {
    why = RejectReason::INVALID_STOP_PRICE;
  } else if (limit && cmd.price > kMaxNotional / cmd.quantity) {
    why = RejectReason::NOTIONAL_OVERFLOW;
  } else {
    const Instrument& inst = book->instrument();
    why = check(inst, cmd.price != s->price ? cmd.price : 0, cmd.quantity, /*check_min=*/false);
    if (why == RejectReason::NONE && stop != s->stop_price && inst.tick_size != 1 && stop % inst.tick_size != 0) {
      why = RejectReason::PRICE_NOT_ON_TICK;
    }
    if (why == RejectReason::NONE && book->stop_reached(s->side, stop)) why = RejectReason::STOP_WOULD_TRIGGER;
  }
  if (why != RejectReason::NONE) {
    out_.on_event(Event::rejected(cmd.order_id, cmd.symbol_id, why));
    return true;
  }
  out_.on_event(Event::modified(cmd.order_id, cmd.symbol_id, cmd.price, cmd.quantity));
  if (stop == s->stop_price && cmd.price == s->price && cmd.quantity <= s->quantity) {
    s->quantity = cmd.quantity;  // keeps its place among the stops
  } else {
    StopOrder moved = stops->take(cmd.order_id);
    moved.stop_price = stop;
    moved.price = cmd.price;
    moved.quantity = cmd.quantity;
    stops->add(moved);  // behind the stops at its stop price
  }
  out_.on_event(Event::done(cmd.order_id, cmd.symbol_id, OrderStatus::NEW, 0, cmd.quantity));
  return true;
}

void Engine::execute(OrderBook& book, Taker& taker, const NewOrder& cmd, OrderIndex node) {
  book.match(taker, out_);
  if (taker.last_price != 0) book.set_last_trade_price(taker.last_price);
  const bool market = cmd.type == OrderType::MARKET;
  if (taker.remaining > 0 && !taker.stp_stopped && !market && cmd.tif == TimeInForce::GTC) {
    // Built where it is stored (a copy through the stack showed in the mixed benchmark).
    const auto resting = [&]() {
      return Order{cmd.order_id, cmd.account_id, cmd.price,   taker.remaining, taker.filled,  0,
                   kNoOrder,     kNoOrder,       cmd.symbol_id, cmd.side,      cmd.stp, cmd.post_only,
                   false};
    };
    if (__builtin_expect(cmd.display_quantity == 0, 1)) {
      store_.place(node, resting());
    } else {
      // An iceberg rests showing one slice: min(display, remaining); the rest is hidden.
      store_.place_iceberg(node, resting(), cmd.display_quantity);
    }
    book.rest(node);
    out_.on_event(Event::done(cmd.order_id, cmd.symbol_id,
                              taker.filled > 0 ? OrderStatus::PARTIALLY_FILLED : OrderStatus::NEW,
                              taker.filled, taker.remaining));
    return;
  }
  // From here the order ends without resting.
  store_.finish(node);
  if (taker.remaining == 0) {
    out_.on_event(
        Event::done(cmd.order_id, cmd.symbol_id, OrderStatus::FILLED, taker.filled, 0));
    return;
  }
  // A FOK that got here was fully fillable, so only STP, MARKET and IOC remain.
  const CancelReason why = taker.stp_stopped ? CancelReason::SELF_TRADE_PREVENTED
                           : market          ? CancelReason::MARKET_REMAINDER
                                             : CancelReason::IOC_REMAINDER;
  out_.on_event(Event::cancelled(cmd.order_id, cmd.symbol_id, taker.remaining, why));
  out_.on_event(
      Event::done(cmd.order_id, cmd.symbol_id, OrderStatus::CANCELLED, taker.filled, 0));
}

void Engine::cancel(const CancelOrder& cmd) {
  const OrderIndex idx = store_.find_live(cmd.order_id);
  // Another account's order, or one on another symbol, is reported exactly like
  // a missing one so that cancels cannot probe for foreign orders.
  if (idx == kNoOrder || store_.at(idx).account_id != cmd.account_id ||
      store_.at(idx).symbol_id != cmd.symbol_id) {
    if (idx == kNoOrder && cancel_stop(cmd)) return;
    out_.on_event(Event::rejected(cmd.order_id, cmd.symbol_id, RejectReason::UNKNOWN_ORDER));
    return;
  }
  const Order& o = store_.at(idx);
  const Quantity remaining = o.remaining;
  const Quantity filled = o.filled;
  book_for(cmd.symbol_id).remove(idx);
  store_.retire(idx);
  out_.on_event(Event::cancelled(cmd.order_id, cmd.symbol_id, remaining, CancelReason::USER));
  out_.on_event(
      Event::done(cmd.order_id, cmd.symbol_id, OrderStatus::CANCELLED, filled, 0));
}

void Engine::modify(const ModifyOrder& cmd) {
  const OrderIndex idx = store_.find_live(cmd.order_id);
  if (idx == kNoOrder && modify_stop(cmd)) return;
  RejectReason why = RejectReason::NONE;
  if (idx == kNoOrder || store_.at(idx).account_id != cmd.account_id ||
      store_.at(idx).symbol_id != cmd.symbol_id) {
    why = RejectReason::UNKNOWN_ORDER;
  } else if (cmd.stop_price != 0) {
    why = RejectReason::INVALID_STOP_PRICE;  // a resting order is no (longer a) stop
  } else if (cmd.quantity <= 0 || cmd.quantity > kMaxQuantity) {
    why = RejectReason::INVALID_QUANTITY;
  } else if (cmd.price <= 0 || cmd.price > kMaxPrice) {
    why = RejectReason::INVALID_PRICE;
  } else if (cmd.price > kMaxNotional / cmd.quantity) {
    why = RejectReason::NOTIONAL_OVERFLOW;
  }
  // The order lookup answers first, so that a halted symbol cannot tell anyone which
  // ids are live; then the halt, which takes precedence over every check of the command
  // itself. It is tested after them only so that the valid path stays as it was (the
  // book loaded where it always was) but for the one branch; a malformed modify on a
  // halted symbol is corrected to INSTRUMENT_HALTED below, off that path. A live
  // order's symbol has a book.
  OrderBook* book = nullptr;
  if (why == RejectReason::NONE) {
    const Order& o = store_.at(idx);
    book = find_book(cmd.symbol_id);
    if (book->halted()) {
      why = RejectReason::INSTRUMENT_HALTED;
    } else {
      // Price rules only bind a new price, so a pure reduce never fails on a
      // tick or band that changed after the order was placed.
      why = check(book->instrument(), cmd.price == o.price ? 0 : cmd.price, cmd.quantity,
                  /*check_min=*/false);
      if (why == RejectReason::NONE && o.post_only && book->crosses_any(o.side, cmd.price)) {
        why = RejectReason::WOULD_TAKE_LIQUIDITY;
      }
    }
  } else if (why != RejectReason::UNKNOWN_ORDER && find_book(cmd.symbol_id)->halted()) {
    why = RejectReason::INSTRUMENT_HALTED;
  }
  if (why != RejectReason::NONE) {
    out_.on_event(Event::rejected(cmd.order_id, cmd.symbol_id, why));
    return;
  }

  Order& o = store_.at(idx);
  out_.on_event(Event::modified(cmd.order_id, cmd.symbol_id, cmd.price, cmd.quantity));
  if (cmd.price == o.price && cmd.quantity <= o.remaining) {
    book->reduce(idx, cmd.quantity);
    out_.on_event(Event::done(cmd.order_id, cmd.symbol_id,
                              o.filled > 0 ? OrderStatus::PARTIALLY_FILLED : OrderStatus::NEW,
                              o.filled, o.remaining));
    return;
  }
  // Cancel-replace, atomically: the order leaves the book and comes back as an
  // incoming GTC limit with the same id, behind everything already resting; an
  // iceberg keeps its display quantity (and shows min(display, what rests)).
  const NewOrder again{o.order_id,       o.account_id, o.symbol_id, o.side,
                       OrderType::LIMIT, TimeInForce::GTC, cmd.price, cmd.quantity,
                       o.post_only,      o.stp,        store_.display(idx)};
  Taker taker{o.order_id, o.account_id, o.side, cmd.price, cmd.quantity, o.filled, o.stp};
  book->remove(idx);
  store_.lift(idx);
  execute(*book, taker, again, idx);
  if (taker.last_price != 0 && book->has_stops()) run_stops(*book, taker);
}

void Engine::execute(const Command& c) {
  switch (c.op) {
    case Command::Op::SUBMIT:
      submit(c.order);
      break;
    case Command::Op::CANCEL:
      cancel(CancelOrder{c.order.order_id, c.order.account_id, c.order.symbol_id});
      break;
    case Command::Op::MODIFY:
      modify(ModifyOrder{c.order.order_id, c.order.account_id, c.order.symbol_id, c.order.price,
                         c.order.quantity, c.order.stop_price});
      break;
  }
}

void Engine::execute(const Command* commands, std::size_t count) {
  // A software pipeline over the batch: while command i runs, command i + kIdSlot gets
  // its id's index slot and its book's pointer fetched, command i + kNodeAndBook its
  // node and book (read from the slot and pointer fetched before), i + kLevelEnds the
  // ends of its side's levels and i + kLevels the levels it will search and move, the
  // nodes beside its order in their queue and the first maker it would trade with. Each
  // step reads only what an earlier one fetched, and keeps what it found in `ahead`.
  constexpr std::size_t kIdSlot = 8, kNodeAndBook = 5, kLevelEnds = 3, kLevels = 1;
  // Books stay where they are during a batch; a node may move (the pool grows when a
  // submit rests), so it is kept by index, and whatever it holds when read is only a
  // hint (a command in between may have changed or reused it).
  struct Ahead {
    const OrderBook* book;
    OrderIndex node;  // a cancel's or modify's order, else kNoOrder
    bool levels;      // whether to fetch the book's levels
  };
  std::array<Ahead, 8> ahead;  // by command index modulo 8 (> kNodeAndBook)
  // The first kNodeAndBook commands' later steps find an entry no earlier step filled.
  ahead.fill(Ahead{nullptr, kNoOrder, false});
  // The books whose levels were fetched lately (by address, direct-mapped, with the
  // command that did): a book used again within kHot commands is in cache still, and
  // fetching its levels again would only cost instructions (one busy book: 0.6x).
  constexpr std::size_t kHot = 256;
  struct Fetched {
    const OrderBook* book;
    std::size_t at;
  };
  std::array<Fetched, 64> fetched{};
  for (std::size_t i = 0; i < count; ++i) {
    if (i + kIdSlot < count) {
      const Command& c = commands[i + kIdSlot];
      if (c.op != Command::Op::SUBMIT) store_.prefetch_id(c.order.order_id);
      if (c.order.symbol_id < dense_books_.size()) __builtin_prefetch(&dense_books_[c.order.symbol_id]);
    }
    if (i + kNodeAndBook < count) {
      const Command& c = commands[i + kNodeAndBook];
      Ahead& a = ahead[(i + kNodeAndBook) % ahead.size()];
      a.book = find_book(c.order.symbol_id);
      a.node = c.op == Command::Op::SUBMIT ? kNoOrder : store_.index_of(c.order.order_id);
      if (a.node != kNoOrder) __builtin_prefetch(&store_.at(a.node));
      if (a.book != nullptr) {
        __builtin_prefetch(a.book);
        __builtin_prefetch(reinterpret_cast<const char*>(a.book) + sizeof(OrderBook) - 1);
      }
    }
    if (i + kLevelEnds < count) {
      const Command& c = commands[i + kLevelEnds];
      Ahead& a = ahead[(i + kLevelEnds) % ahead.size()];
      if (a.node != kNoOrder && store_.at(a.node).remaining == 0) a.node = kNoOrder;  // done
      a.levels = a.book != nullptr && (a.node != kNoOrder || c.op == Command::Op::SUBMIT);
      if (a.levels) {
        Fetched& f = fetched[(reinterpret_cast<std::uintptr_t>(a.book) / sizeof(OrderBook)) % fetched.size()];
        a.levels = f.book != a.book || i + kLevelEnds - f.at > kHot;
        if (a.levels) f = Fetched{a.book, i + kLevelEnds};
      }
      if (a.levels) a.book->prefetch_ends(a.node != kNoOrder ? store_.at(a.node).side : c.order.side);
    }
    if (i + kLevels < count) {
      const Command& c = commands[i + kLevels];
      const Ahead& a = ahead[(i + kLevels) % ahead.size()];
      const Order* node = a.node != kNoOrder ? &store_.at(a.node) : nullptr;
      const Side side = node != nullptr ? node->side : c.order.side;
      // A submit that cannot rest (market, IOC, FOK) only trades: the other side's best,
      // fetched with the ends, is all it reads.
      const bool rests = c.op != Command::Op::SUBMIT ||
                         (c.order.type == OrderType::LIMIT && c.order.tif == TimeInForce::GTC);
      if (a.levels && rests) {
        if (c.op == Command::Op::MODIFY) {
          a.book->prefetch_from(side, node->price, c.order.price);
        } else {
          a.book->prefetch_from(side, c.op == Command::Op::CANCEL ? node->price : c.order.price);
        }
      }
      // The nodes a cancel or modify relinks when it takes its order out of its queue.
      if (node != nullptr) {
        if (node->prev != kNoOrder) __builtin_prefetch(&store_.at(node->prev));
        if (node->next != kNoOrder) __builtin_prefetch(&store_.at(node->next));
      }
      // The first maker a submit or modify trades with, if its price crosses.
      if (a.book != nullptr && c.op != Command::Op::CANCEL) {
        a.book->prefetch_maker(side, c.order.type == OrderType::MARKET ? Taker::any_price(side) : c.order.price);
      }
    }
    execute(commands[i]);
  }
}

bool Engine::set_instrument(SymbolId symbol, const Instrument& inst) {
  if (!valid(inst)) return false;
  book_for(symbol).instrument() = inst;
  return true;
}

bool Engine::set_reference_price(SymbolId symbol, Price price) {
  if (price < 0 || price > kMaxPrice) return false;
  book_for(symbol).instrument().reference_price = price;
  return true;
}

Instrument Engine::instrument(SymbolId symbol) const {
  const OrderBook* book = find_book(symbol);
  return book == nullptr ? Instrument{} : book->instrument();
}

bool Engine::set_trading_status(SymbolId symbol, TradingStatus status) {
  if (!valid(status)) return false;
  book_for(symbol).set_trading_status(status);
  return true;
}

TradingStatus Engine::trading_status(SymbolId symbol) const {
  const OrderBook* book = find_book(symbol);
  return book == nullptr ? TradingStatus::TRADING : book->trading_status();
}

std::size_t Engine::cancel_all(AccountId account, std::optional<SymbolId> symbol) {
  // No index by account: it would cost every accepted and retired order, for a rare
  // command. So: collect the account's resting orders and waiting stops by walking the
  // book(s), then cancel them in id order (the order a caller can predict and a replay
  // reproduces, whatever the books' layout).
  std::vector<OrderIndex> resting;
  std::vector<StopOrder> stops;
  struct Found {
    OrderId id;
    SymbolId symbol;
    OrderIndex node;
    bool stop;
  };
  std::vector<Found> found;
  const auto collect = [&](const OrderBook& book) {
    resting.clear();
    stops.clear();
    book.orders_of(account, resting);
    if (const StopBook* s = book.stop_book()) s->of_account(account, stops);
    for (const OrderIndex idx : resting) found.push_back({store_.at(idx).order_id, book.symbol(), idx, false});
    for (const StopOrder& s : stops) found.push_back({s.order_id, book.symbol(), s.node, true});
  };
  if (symbol) {
    if (const OrderBook* book = find_book(*symbol)) collect(*book);
  } else {
    for (const auto& kv : books_) collect(*kv.second);
  }
  std::sort(found.begin(), found.end(), [](const Found& a, const Found& b) { return a.id < b.id; });
  // Retiring a node frees, at most, the oldest *done* node of the id window, never a
  // resting one or a waiting stop's, so the indices collected stay valid throughout.
  for (const Found& f : found) {
    OrderBook& book = *find_book(f.symbol);
    Quantity remaining, filled = 0;
    if (f.stop) {
      remaining = book.stops().take(f.id).quantity;
      store_.finish(f.node);
    } else {
      remaining = store_.at(f.node).remaining;
      filled = store_.at(f.node).filled;
      book.remove(f.node);
      store_.retire(f.node);
    }
    out_.on_event(Event::cancelled(f.id, f.symbol, remaining, CancelReason::MASS_CANCEL));
    out_.on_event(Event::done(f.id, f.symbol, OrderStatus::CANCELLED, filled, 0));
  }
  return found.size();
}

void Engine::stops(SymbolId symbol, std::vector<StopOrder>& buys, std::vector<StopOrder>& sells) const {
  buys.clear();
  sells.clear();
  const OrderBook* book = find_book(symbol);
  if (book == nullptr || book->stop_book() == nullptr) return;
  book->stop_book()->list(Side::BUY, buys);
  book->stop_book()->list(Side::SELL, sells);
}

Price Engine::last_trade_price(SymbolId symbol) const {
  const OrderBook* book = find_book(symbol);
  return book == nullptr ? 0 : book->last_trade_price();
}

std::optional<OrderView> Engine::order(OrderId id) const {
  const OrderIndex idx = store_.find_live(id);
  if (idx == kNoOrder) return std::nullopt;
  const Order& o = store_.at(idx);
  return OrderView{o.symbol_id, o.side,       o.price, o.remaining,
                   o.filled,    o.account_id, o.visible(), store_.display(idx)};
}

TopOfBook Engine::top(SymbolId symbol) const {
  TopOfBook t;
  const OrderBook* book = find_book(symbol);
  if (book == nullptr) return t;
  std::vector<LevelView> one;
  book->depth(Side::BUY, 1, one);
  if (!one.empty()) t.bid = one.front();
  one.clear();
  book->depth(Side::SELL, 1, one);
  if (!one.empty()) t.ask = one.front();
  return t;
}

void Engine::depth(SymbolId symbol, std::size_t max_levels, std::vector<LevelView>& bids,
                   std::vector<LevelView>& asks) const {
  bids.clear();
  asks.clear();
  const OrderBook* book = find_book(symbol);
  if (book == nullptr) return;
  book->depth(Side::BUY, max_levels, bids);
  book->depth(Side::SELL, max_levels, asks);
}

void Engine::l3(SymbolId symbol, std::vector<OrderEntry>& bids,
                std::vector<OrderEntry>& asks) const {
  bids.clear();
  asks.clear();
  const OrderBook* book = find_book(symbol);
  if (book == nullptr) return;
  book->orders(Side::BUY, bids);
  book->orders(Side::SELL, asks);
}

// ---- snapshot ---------------------------------------------------------------
//
// Little-endian, fixed-width:
//   "BRSE" u32 version=4, u64 event_hash, u32 book_count,
//   per book (ascending symbol): u32 symbol, 6 x i64 instrument
//     (tick, lot, min, max, band_percent, reference), u8 trading status (1 TRADING,
//     2 HALTED), i64 last trade price (0: none), then per side (BUY, SELL):
//     u32 order_count, orders in priority order (an iceberg where its last refresh put it):
//     u64 id, u64 account, i64 price, i64 remaining, i64 filled, u8 stp, u8 post_only,
//     i64 display_quantity (0: an ordinary order), i64 visible (what the book shows;
//     hidden = remaining - visible)           -- 58 bytes per order
//   then per side (BUY, SELL): u32 stop_count, the waiting stops in entry order:
//     u64 id, u64 account, i64 stop_price, i64 price, i64 quantity, i64 display_quantity,
//     u8 type, u8 tif, u8 stp                 -- 51 bytes per stop
// Version 3 is version 4 without the last trade price and the stops (there were none);
// version 2 is version 3 without the last two fields of an order (42 bytes per order:
// every order ordinary, shown whole); version 1 is version 2 without the status byte
// (every book TRADING: there were no halts then). restore() reads all four;
// snapshot() writes 4.

namespace {

constexpr char kMagic[4] = {'B', 'R', 'S', 'E'};
constexpr std::uint32_t kSnapshotVersion = 4;
constexpr std::uint32_t kSnapshotVersionWithoutStops = 3;
constexpr std::uint32_t kSnapshotVersionWithoutIcebergs = 2;
constexpr std::uint32_t kSnapshotVersionWithoutStatus = 1;

template <class T>
void put(std::string& out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));  // the engine targets little-endian hosts only
  out.append(buf, sizeof(T));
}

}  // namespace

struct SnapshotReader {
  std::string_view data;
  std::size_t pos = 0;
  template <class T>
  T get() {
    if (data.size() - pos < sizeof(T)) throw std::invalid_argument("snapshot: truncated");
    T v;
    std::memcpy(&v, data.data() + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
};

namespace {
using Reader = SnapshotReader;
}  // namespace

std::string Engine::snapshot() const {
  std::vector<SymbolId> symbols;
  symbols.reserve(books_.size());
  for (const auto& kv : books_) symbols.push_back(kv.first);
  std::sort(symbols.begin(), symbols.end());

  std::string out;
  out.reserve(32 + symbols.size() * 77 + store_.live() * 58);  // stops: appended as they come
  out.append(kMagic, 4);
  put<std::uint32_t>(out, kSnapshotVersion);
  put<std::uint64_t>(out, out_.hash);
  put<std::uint32_t>(out, static_cast<std::uint32_t>(symbols.size()));
  std::vector<OrderEntry> side_orders;
  for (SymbolId sym : symbols) {
    const OrderBook& book = *books_.at(sym);
    const Instrument& i = book.instrument();
    put<std::uint32_t>(out, sym);
    for (std::int64_t v : {i.tick_size, i.lot_size, i.min_quantity, i.max_quantity,
                           i.band_percent, i.reference_price}) {
      put<std::int64_t>(out, v);
    }
    put<std::uint8_t>(out, static_cast<std::uint8_t>(book.trading_status()));
    put<std::int64_t>(out, book.last_trade_price());
    for (Side side : {Side::BUY, Side::SELL}) {
      side_orders.clear();
      book.orders(side, side_orders);
      put<std::uint32_t>(out, static_cast<std::uint32_t>(side_orders.size()));
      for (const OrderEntry& o : side_orders) {
        put<std::uint64_t>(out, o.order_id);
        put<std::uint64_t>(out, o.account_id);
        put<std::int64_t>(out, o.price);
        put<std::int64_t>(out, o.remaining + o.hidden);  // leaves: shown + hidden
        put<std::int64_t>(out, o.filled);
        put<std::uint8_t>(out, static_cast<std::uint8_t>(o.stp));
        put<std::uint8_t>(out, o.post_only ? 1 : 0);
        put<std::int64_t>(out, o.display_quantity);
        put<std::int64_t>(out, o.remaining);  // the shown part
      }
    }
    std::vector<StopOrder> side_stops;
    for (Side side : {Side::BUY, Side::SELL}) {
      side_stops.clear();
      if (book.stop_book() != nullptr) book.stop_book()->list(side, side_stops);
      put<std::uint32_t>(out, static_cast<std::uint32_t>(side_stops.size()));
      for (const StopOrder& s : side_stops) {
        put<std::uint64_t>(out, s.order_id);
        put<std::uint64_t>(out, s.account_id);
        put<std::int64_t>(out, s.stop_price);
        put<std::int64_t>(out, s.price);
        put<std::int64_t>(out, s.quantity);
        put<std::int64_t>(out, s.display_quantity);
        put<std::uint8_t>(out, static_cast<std::uint8_t>(s.type));
        put<std::uint8_t>(out, static_cast<std::uint8_t>(s.tif));
        put<std::uint8_t>(out, static_cast<std::uint8_t>(s.stp));
      }
    }
  }
  return out;
}

void Engine::restore(std::string_view data) {
  try {
    restore_unchecked(data);
  } catch (...) {
    books_.clear();
    dense_books_.clear();
    store_ = OrderStore(expected_orders_, id_window_);
    out_.hash = kEventHashSeed;
    throw;
  }
}

void Engine::restore_stops(SnapshotReader& r, OrderBook& book) {
  for (Side side : {Side::BUY, Side::SELL}) {
    const std::uint32_t n = r.get<std::uint32_t>();
    Price last = 0;
    for (std::uint32_t k = 0; k < n; ++k) {
      StopOrder s{};
      s.order_id = r.get<std::uint64_t>();
      s.account_id = r.get<std::uint64_t>();
      s.stop_price = r.get<std::int64_t>();
      s.price = r.get<std::int64_t>();
      s.quantity = r.get<std::int64_t>();
      s.display_quantity = r.get<std::int64_t>();
      s.type = static_cast<OrderType>(r.get<std::uint8_t>());
      s.tif = static_cast<TimeInForce>(r.get<std::uint8_t>());
      s.stp = static_cast<SelfTradePrevention>(r.get<std::uint8_t>());
      s.side = side;
      // Whatever a waiting stop satisfies: a well-formed order with a stop price, in
      // entry order, not yet reached by the last trade price, with an id of its own.
      const NewOrder as_order{s.order_id, s.account_id, book.symbol(), side, s.type, s.tif, s.price,
                              s.quantity, false, s.stp, 0, s.stop_price};
      const bool in_order = k == 0 || (side == Side::BUY ? s.stop_price >= last : s.stop_price <= last);
      if (validate_full(as_order) != RejectReason::NONE || s.stop_price <= 0 || !in_order ||
          book.stop_reached(side, s.stop_price) || store_.known(s.order_id) || s.display_quantity < 0 ||
          s.display_quantity > kMaxQuantity ||
          (s.display_quantity != 0 && (s.type != OrderType::LIMIT || s.tif != TimeInForce::GTC))) {
        throw std::invalid_argument("snapshot: invalid stop");
      }
      last = s.stop_price;
      s.node = store_.accept(s.order_id);
      book.stops().add(s);
    }
  }
}

void Engine::restore_unchecked(std::string_view data) {
  books_.clear();
  dense_books_.clear();
  store_ = OrderStore(expected_orders_, id_window_);
  Reader r{data};
  if (data.size() < 4 || std::memcmp(data.data(), kMagic, 4) != 0) {
    throw std::invalid_argument("snapshot: bad magic");
  }
  r.pos = 4;
  const std::uint32_t version = r.get<std::uint32_t>();
  if (version != kSnapshotVersion && version != kSnapshotVersionWithoutStops &&
      version != kSnapshotVersionWithoutIcebergs && version != kSnapshotVersionWithoutStatus) {
    throw std::invalid_argument("snapshot: unsupported version");
  }
  out_.hash = r.get<std::uint64_t>();
  const std::uint32_t book_count = r.get<std::uint32_t>();
  for (std::uint32_t b = 0; b < book_count; ++b) {
    const SymbolId sym = r.get<std::uint32_t>();
    if (books_.count(sym) != 0) throw std::invalid_argument("snapshot: duplicate symbol");
    Instrument i;
    i.tick_size = r.get<std::int64_t>();
    i.lot_size = r.get<std::int64_t>();
    i.min_quantity = r.get<std::int64_t>();
    i.max_quantity = r.get<std::int64_t>();
    i.band_percent = r.get<std::int64_t>();
    i.reference_price = r.get<std::int64_t>();
    if (!valid(i)) throw std::invalid_argument("snapshot: invalid instrument");
    TradingStatus status = TradingStatus::TRADING;
    if (version != kSnapshotVersionWithoutStatus) {
      status = static_cast<TradingStatus>(r.get<std::uint8_t>());
      if (!valid(status)) throw std::invalid_argument("snapshot: invalid trading status");
    }
    Price last_trade = 0;
    if (version == kSnapshotVersion) {
      last_trade = r.get<std::int64_t>();
      if (last_trade < 0 || last_trade > kMaxPrice) throw std::invalid_argument("snapshot: invalid last trade price");
    }
    OrderBook& book = book_for(sym);
    book.instrument() = i;
    book.set_trading_status(status);
    book.set_last_trade_price(last_trade);
    for (Side side : {Side::BUY, Side::SELL}) {
      const std::uint32_t n = r.get<std::uint32_t>();
      Price last = 0;
      for (std::uint32_t k = 0; k < n; ++k) {
        Order o{};
        o.order_id = r.get<std::uint64_t>();
        o.account_id = r.get<std::uint64_t>();
        o.price = r.get<std::int64_t>();
        o.remaining = r.get<std::int64_t>();
        o.filled = r.get<std::int64_t>();
        const auto stp = r.get<std::uint8_t>();
        const auto post_only = r.get<std::uint8_t>();
        Quantity display = 0, visible = o.remaining;
        if (version >= kSnapshotVersionWithoutStops) {
          display = r.get<std::int64_t>();
          visible = r.get<std::int64_t>();
        }
        o.prev = o.next = kNoOrder;
        o.symbol_id = sym;
        o.side = side;
        o.stp = static_cast<SelfTradePrevention>(stp);
        o.post_only = post_only != 0;
        // Everything a resting order satisfies, so a restored engine can rely on
        // the same invariants (bounded notional, priority order, no crossing).
        const bool in_order = k == 0 || (side == Side::BUY ? o.price <= last : o.price >= last);
        if (o.price <= 0 || o.price > kMaxPrice || o.remaining <= 0 ||
            o.remaining > kMaxQuantity || o.filled < 0 || o.filled > kMaxQuantity ||
            o.price > kMaxNotional / o.remaining || stp < 1 || stp > 3 || post_only > 1 ||
            !in_order || store_.known(o.order_id) || book.crosses_any(side, o.price)) {
          throw std::invalid_argument("snapshot: invalid order");
        }
        // An ordinary order shows all of it; an iceberg a slice of 1 to display lots.
        if (display < 0 || display > kMaxQuantity || visible <= 0 || visible > o.remaining ||
            (display == 0 ? visible != o.remaining : visible > display)) {
          throw std::invalid_argument("snapshot: invalid iceberg");
        }
        o.hidden = o.remaining - visible;
        last = o.price;
        book.rest(store_.add(o, display));
      }
    }
    if (version == kSnapshotVersion) restore_stops(r, book);
  }
  if (r.pos != data.size()) throw std::invalid_argument("snapshot: trailing bytes");
}

}  // namespace bourse::engine
