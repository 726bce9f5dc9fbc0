#include "bourse/engine/event.hpp"

#include <ostream>

namespace bourse::engine {

Event Event::accepted(OrderId id, SymbolId symbol) {
  Event e;
  e.kind = EventKind::ACCEPTED;
  e.order_id = id;
  e.symbol_id = symbol;
  return e;
}

Event Event::rejected(OrderId id, SymbolId symbol, RejectReason why) {
  Event e;
  e.kind = EventKind::REJECTED;
  e.order_id = id;
  e.symbol_id = symbol;
  e.reason = static_cast<std::uint8_t>(why);
  return e;
}

Event Event::cancelled(OrderId id, SymbolId symbol, Quantity remaining, CancelReason why) {
  Event e;
  e.kind = EventKind::CANCELLED;
  e.order_id = id;
  e.symbol_id = symbol;
  e.reason = static_cast<std::uint8_t>(why);
  e.remaining = remaining;
  return e;
}

Event Event::done(OrderId id, SymbolId symbol, OrderStatus status, Quantity filled,
                  Quantity remaining) {
  Event e;
  e.kind = EventKind::DONE;
  e.order_id = id;
  e.symbol_id = symbol;
  e.status = status;
  e.filled = filled;
  e.remaining = remaining;
  return e;
}

Event Event::modified(OrderId id, SymbolId symbol, Price price, Quantity quantity) {
  Event e;
  e.kind = EventKind::MODIFIED;
  e.order_id = id;
  e.symbol_id = symbol;
  e.price = price;
  e.quantity = quantity;
  return e;
}

Event Event::trade(SymbolId symbol, OrderId maker_order_id, OrderId taker_order_id,
                   AccountId maker_account, AccountId taker_account, Price price,
                   Quantity quantity, Side aggressor_side, Quantity maker_remaining,
                   Quantity taker_remaining) {
  Event e;
  e.kind = EventKind::TRADE;
  e.symbol_id = symbol;
  e.order_id = taker_order_id;
  e.maker_order_id = maker_order_id;
  e.taker_order_id = taker_order_id;
  e.maker_account = maker_account;
  e.taker_account = taker_account;
  e.price = price;
  e.quantity = quantity;
  e.aggressor_side = aggressor_side;
  e.maker_remaining = maker_remaining;
  e.taker_remaining = taker_remaining;
  return e;
}

bool operator==(const Event& a, const Event& b) {
  return a.kind == b.kind && a.reason == b.reason && a.status == b.status &&
         a.aggressor_side == b.aggressor_side && a.symbol_id == b.symbol_id &&
         a.order_id == b.order_id && a.maker_order_id == b.maker_order_id &&
         a.taker_order_id == b.taker_order_id && a.maker_account == b.maker_account &&
         a.taker_account == b.taker_account && a.price == b.price &&
         a.quantity == b.quantity && a.maker_remaining == b.maker_remaining &&
         a.taker_remaining == b.taker_remaining && a.filled == b.filled &&
         a.remaining == b.remaining;
}

namespace {

const char* kind_name(EventKind k) {
  switch (k) {
    case EventKind::ACCEPTED: return "ACCEPTED";
    case EventKind::REJECTED: return "REJECTED";
    case EventKind::TRADE: return "TRADE";
    case EventKind::CANCELLED: return "CANCELLED";
    case EventKind::DONE: return "DONE";
    case EventKind::MODIFIED: return "MODIFIED";
  }
  return "?";
}

}  // namespace

std::ostream& operator<<(std::ostream& os, const Event& e) {
  os << kind_name(e.kind) << "{order=" << e.order_id << " sym=" << e.symbol_id;
  switch (e.kind) {
    case EventKind::REJECTED:
    case EventKind::CANCELLED:
      os << " reason=" << int(e.reason) << " remaining=" << e.remaining;
      break;
    case EventKind::TRADE:
      os << " maker=" << e.maker_order_id << " taker=" << e.taker_order_id
         << " maker_acct=" << e.maker_account << " taker_acct=" << e.taker_account
         << " px=" << e.price << " qty=" << e.quantity
         << " aggressor=" << int(e.aggressor_side) << " maker_rem=" << e.maker_remaining
         << " taker_rem=" << e.taker_remaining;
      break;
    case EventKind::MODIFIED:
      os << " px=" << e.price << " qty=" << e.quantity;
      break;
    case EventKind::DONE:
      os << " status=" << int(e.status) << " filled=" << e.filled
         << " remaining=" << e.remaining;
      break;
    default:
      break;
  }
  return os << "}";
}

}  // namespace bourse::engine
