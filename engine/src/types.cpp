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

namespace {

RejectReason validate_flags(const NewOrder& o) {
  const auto stp = static_cast<std::uint8_t>(o.stp);
  if (stp < 1 || stp > 3) return RejectReason::INVALID_SELF_TRADE_PREVENTION;
  if (o.post_only && (o.type != OrderType::LIMIT || o.tif != TimeInForce::GTC)) {
    return RejectReason::INVALID_POST_ONLY;
  }
  // One predictable branch for an ordinary order (display 0).
  if (o.display_quantity != 0 &&
      (o.display_quantity < 0 || o.display_quantity >= o.quantity || o.type != OrderType::LIMIT ||
       o.tif != TimeInForce::GTC)) {
    return RejectReason::INVALID_DISPLAY_QUANTITY;
  }
  if (o.stop_price != 0) {
    if (o.stop_price < 0 || o.stop_price > kMaxPrice) return RejectReason::INVALID_STOP_PRICE;
    // Post-only means "rest, never take": a stop enters exactly when the price runs at it.
    if (o.post_only) return RejectReason::INVALID_POST_ONLY;
  }
  return RejectReason::NONE;
}

}  // namespace

RejectReason validate_full(const NewOrder& o) {
  RejectReason why = validate(o);
  return why != RejectReason::NONE ? why : validate_flags(o);
}

bool valid(const Instrument& i) {
  return i.tick_size >= 1 && i.tick_size <= kMaxPrice && i.lot_size >= 1 &&
         i.lot_size <= kMaxQuantity && i.min_quantity >= 1 && i.min_quantity <= i.max_quantity &&
         i.max_quantity <= kMaxQuantity && i.band_percent >= 0 &&
         i.band_percent <= kMaxBandPercent && i.reference_price >= 0 &&
         i.reference_price <= kMaxPrice;
}

RejectReason check(const Instrument& i, Price price, Quantity quantity, bool check_min) {
  // A 64-bit division is tens of cycles on every submit and modify; most instruments
  // trade in single ticks and lots, where none is needed.
  if (price != 0 && i.tick_size != 1 && price % i.tick_size != 0) return RejectReason::PRICE_NOT_ON_TICK;
  if (i.lot_size != 1 && quantity % i.lot_size != 0) return RejectReason::QUANTITY_NOT_ON_LOT;
  if (check_min && quantity < i.min_quantity) return RejectReason::QUANTITY_BELOW_MIN;
  if (quantity > i.max_quantity) return RejectReason::QUANTITY_ABOVE_MAX;
  if (price != 0 && i.band_percent > 0 && i.reference_price > 0) {
    // 128 bits: reference (<= 1e15) * percent (<= 1e3) and the difference * 100
    // do not fit comfortably in int64.
    __extension__ typedef __int128 Wide;
    const Wide diff = static_cast<Wide>(price) - i.reference_price;
    const Wide off = diff < 0 ? -diff : diff;
    if (off * 100 > static_cast<Wide>(i.reference_price) * i.band_percent) {
      return RejectReason::PRICE_OUTSIDE_BAND;
    }
  }
  return RejectReason::NONE;
}

}  // namespace bourse::engine
