#include "bourse/engine/types.hpp"

namespace bourse::engine {

// The checks run in a fixed order so that an order with several problems gets
// one deterministic reason (the Python reference model uses the same order).
RejectReason validate(const NewOrder& o) {
  if (o.side != Side::BUY && o.side != Side::SELL) return RejectReason::INVALID_SIDE;
  if (o.type != OrderType::LIMIT && o.type != OrderType::MARKET) {
    return RejectReason::INVALID_ORDER_TYPE;
  }
  if (o.tif != TimeInForce::GTC && o.tif != TimeInForce::IOC && o.tif != TimeInForce::FOK) {
    return RejectReason::INVALID_TIME_IN_FORCE;
  }
  if (o.quantity <= 0 || o.quantity > kMaxQuantity) return RejectReason::INVALID_QUANTITY;
  if (o.type == OrderType::MARKET) {
    return o.price == 0 ? RejectReason::NONE : RejectReason::INVALID_PRICE;
  }
  if (o.price <= 0 || o.price > kMaxPrice) return RejectReason::INVALID_PRICE;
  // Both operands are positive and bounded, so the division is exact enough.
  if (o.price > kMaxNotional / o.quantity) return RejectReason::NOTIONAL_OVERFLOW;
  return RejectReason::NONE;
}

}  // namespace bourse::engine
