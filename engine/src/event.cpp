#include "bourse/engine/event.hpp"

#include <ostream>

namespace bourse::engine {

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
    case EventKind::TRIGGERED: return "TRIGGERED";
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
    case EventKind::TRIGGERED:
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
