#include "bourse/engine/engine.hpp"

namespace bourse::engine {

Engine::Engine(EventHandler& handler, std::size_t expected_orders)
    : out_(handler), store_(expected_orders) {}

OrderBook& Engine::book_for(SymbolId symbol) {
  std::unique_ptr<OrderBook>& slot = books_[symbol];
  if (!slot) slot = std::make_unique<OrderBook>(symbol, store_);
  return *slot;
}

const OrderBook* Engine::find_book(SymbolId symbol) const {
  auto it = books_.find(symbol);
  return it == books_.end() ? nullptr : it->second.get();
}

void Engine::submit(const NewOrder& cmd) {
  RejectReason why = validate(cmd);
  if (why == RejectReason::NONE && store_.known(cmd.order_id)) {
    why = RejectReason::DUPLICATE_ORDER_ID;
  }
  if (why != RejectReason::NONE) {
    out_.on_event(Event::rejected(cmd.order_id, cmd.symbol_id, why));
    out_.on_event(Event::done(cmd.order_id, cmd.symbol_id, OrderStatus::REJECTED, 0, 0));
    return;
  }

  // From here on the id is taken, whatever happens to the order.
  store_.mark_known(cmd.order_id);
  out_.on_event(Event::accepted(cmd.order_id, cmd.symbol_id));

  OrderBook& book = book_for(cmd.symbol_id);
  const bool market = cmd.type == OrderType::MARKET;
  Taker taker{cmd.order_id,
              cmd.account_id,
              cmd.side,
              market ? Taker::any_price(cmd.side) : cmd.price,
              cmd.quantity,
              0};

  // All-or-nothing is decided before any fill, so a killed FOK leaves no trace
  // in the book.
  if (cmd.tif == TimeInForce::FOK &&
      book.fillable(cmd.side, taker.limit, cmd.quantity) < cmd.quantity) {
    out_.on_event(Event::cancelled(cmd.order_id, cmd.symbol_id, cmd.quantity,
                                   CancelReason::FOK_UNFILLABLE));
    out_.on_event(Event::done(cmd.order_id, cmd.symbol_id, OrderStatus::CANCELLED, 0, 0));
    return;
  }

  book.match(taker, out_);

  if (taker.remaining > 0 && !market && cmd.tif == TimeInForce::GTC) {
    Order node{cmd.order_id, cmd.account_id, cmd.price, taker.remaining, taker.filled,
               kNoOrder,     kNoOrder,       cmd.symbol_id, cmd.side};
    book.rest(store_.add(node));
    out_.on_event(Event::done(cmd.order_id, cmd.symbol_id,
                              taker.filled > 0 ? OrderStatus::PARTIALLY_FILLED : OrderStatus::NEW,
                              taker.filled, taker.remaining));
    return;
  }
  finish_unrested(cmd, taker);
}

// An order that does not rest: filled, or its remainder is cancelled.
void Engine::finish_unrested(const NewOrder& cmd, const Taker& taker) {
  if (taker.remaining == 0) {
    out_.on_event(
        Event::done(cmd.order_id, cmd.symbol_id, OrderStatus::FILLED, taker.filled, 0));
    return;
  }
  // A FOK that got here was fully fillable, so only MARKET and IOC remain.
  const CancelReason why = cmd.type == OrderType::MARKET ? CancelReason::MARKET_REMAINDER
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

std::optional<OrderView> Engine::order(OrderId id) const {
  const OrderIndex idx = store_.find_live(id);
  if (idx == kNoOrder) return std::nullopt;
  const Order& o = store_.at(idx);
  return OrderView{o.symbol_id, o.side, o.price, o.remaining, o.filled, o.account_id};
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

}  // namespace bourse::engine
