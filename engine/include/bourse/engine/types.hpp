#pragma once

#include <cstdint>
#include <limits>

namespace bourse::engine {

using OrderId = std::uint64_t;
using AccountId = std::uint64_t;
using SymbolId = std::uint32_t;
using Price = std::int64_t;     // ticks
using Quantity = std::int64_t;  // lots

// Integer values match the protobuf enums in bourse.type.v1 (0 = unspecified).
// Commands may carry any byte; validation rejects values outside the enumerators.
enum class Side : std::uint8_t { BUY = 1, SELL = 2 };
enum class OrderType : std::uint8_t { LIMIT = 1, MARKET = 2 };
enum class TimeInForce : std::uint8_t { GTC = 1, IOC = 2, FOK = 3 };
enum class OrderStatus : std::uint8_t {
  NEW = 1,
  PARTIALLY_FILLED = 2,
  FILLED = 3,
  CANCELLED = 4,
  REJECTED = 5,
};

enum class RejectReason : std::uint8_t {
  NONE = 0,
  UNKNOWN_ORDER = 1,       // cancel of an order that is not live for this account+symbol
  DUPLICATE_ORDER_ID = 2,  // order_id was already accepted by this engine
  INVALID_SIDE = 3,
  INVALID_ORDER_TYPE = 4,
  INVALID_TIME_IN_FORCE = 5,
  INVALID_QUANTITY = 6,   // <= 0 or > kMaxQuantity
  INVALID_PRICE = 7,      // limit: <= 0 or > kMaxPrice; market: != 0
  NOTIONAL_OVERFLOW = 8,  // limit price * quantity does not fit in int64
  WOULD_TAKE_LIQUIDITY = 9,             // post-only order (or its modify) would trade
  PRICE_NOT_ON_TICK = 10,               // limit price not a multiple of the tick size
  QUANTITY_NOT_ON_LOT = 11,             // quantity not a multiple of the lot size
  QUANTITY_BELOW_MIN = 12,              // new order below the instrument's minimum
  QUANTITY_ABOVE_MAX = 13,              // above the instrument's maximum
  PRICE_OUTSIDE_BAND = 14,              // limit price too far from the reference price
  INVALID_SELF_TRADE_PREVENTION = 15,   // stp mode not one of the enumerators
  INVALID_POST_ONLY = 16,               // post-only on a market, IOC or FOK order
  INSTRUMENT_HALTED = 17,               // the symbol is halted (submit and modify)
  INVALID_DISPLAY_QUANTITY = 18,        // iceberg display quantity not in [1, quantity - 1], not on
                                        // the lot, or on an order that cannot rest (market, IOC, FOK)
  INVALID_STOP_PRICE = 19,              // stop price outside [0, kMaxPrice] (a modify's: non-zero
                                        // on an order that is not a waiting stop)
  STOP_WOULD_TRIGGER = 20,              // the last trade price already satisfies the stop's trigger
};

enum class CancelReason : std::uint8_t {
  NONE = 0,
  USER = 1,
  IOC_REMAINDER = 2,
  MARKET_REMAINDER = 3,
  FOK_UNFILLABLE = 4,
  SELF_TRADE_PREVENTED = 5,  // the order would have traded with its own account
  MASS_CANCEL = 6,           // cancelled by Engine::cancel_all
};

// Whether a symbol accepts new orders and modifies (values match the protobuf enum;
// 0 = unspecified is not a status). Cancels work in both.
enum class TradingStatus : std::uint8_t {
  TRADING = 1,
  HALTED = 2,  // submits and modifies are rejected INSTRUMENT_HALTED; resting orders stay
};

inline bool valid(TradingStatus s) {
  return s == TradingStatus::TRADING || s == TradingStatus::HALTED;
}

// What happens when an incoming order would trade with a resting order of the
// same account. The incoming order's mode decides.
enum class SelfTradePrevention : std::uint8_t {
  CANCEL_INCOMING = 1,  // cancel the incoming order's remainder (default)
  CANCEL_RESTING = 2,   // cancel the resting order, keep matching
  CANCEL_BOTH = 3,      // cancel both
};

// Limits chosen so that no arithmetic in the engine can overflow:
//  * every resting order's notional (price * quantity) fits in int64, so every
//    trade's notional does too (trade price == maker price, trade qty <= maker qty);
//  * sums across orders (level totals) are kept in 128 bits.
inline constexpr Quantity kMaxQuantity = 1'000'000'000'000;     // 1e12 lots
inline constexpr Price kMaxPrice = 1'000'000'000'000'000;       // 1e15 ticks
inline constexpr std::int64_t kMaxNotional = std::numeric_limits<std::int64_t>::max();

struct NewOrder {
  OrderId order_id = 0;
  AccountId account_id = 0;
  SymbolId symbol_id = 0;
  Side side = Side::BUY;
  OrderType type = OrderType::LIMIT;
  TimeInForce tif = TimeInForce::GTC;
  Price price = 0;        // must be 0 for MARKET
  Quantity quantity = 0;
  bool post_only = false;  // LIMIT GTC only: rejected if it would trade on arrival
  SelfTradePrevention stp = SelfTradePrevention::CANCEL_INCOMING;
  // 0: an ordinary order. Else an iceberg (LIMIT GTC only, 0 < display_quantity <
  // quantity, a multiple of the lot size): it trades on arrival with its whole quantity,
  // and what rests shows one slice of at most display_quantity; when a slice is filled
  // the next one is shown at the back of its price level (see engine/README.md).
  Quantity display_quantity = 0;
  // 0: not a stop. Else a stop (MARKET) or stop-limit (LIMIT): it waits off the book until
  // a trade prints at or beyond this price (a buy at or above it, a sell at or below),
  // then enters as the order it describes (see engine/README.md).
  Price stop_price = 0;
};

struct CancelOrder {
  OrderId order_id = 0;
  AccountId account_id = 0;
  SymbolId symbol_id = 0;
};

// Replaces price and/or open quantity of a resting order. quantity is the new
// open (leaves) quantity. Same price and quantity <= leaves: reduced in place,
// priority kept. Otherwise cancel-replace: the order loses its place and may
// trade at once as an incoming limit order.
struct ModifyOrder {
  OrderId order_id = 0;
  AccountId account_id = 0;
  SymbolId symbol_id = 0;
  Price price = 0;
  Quantity quantity = 0;
  // A waiting stop's new stop price (0: keep it); must be 0 for a resting order.
  Price stop_price = 0;
};

// Per-symbol trading rules; the defaults impose nothing beyond the global limits.
struct Instrument {
  Price tick_size = 1;           // limit prices must be multiples
  Quantity lot_size = 1;         // quantities must be multiples
  Quantity min_quantity = 1;     // new orders only (fills and reductions may go below)
  Quantity max_quantity = kMaxQuantity;
  std::int64_t band_percent = 0;  // 0: no band; else |price - ref| * 100 <= ref * band_percent
  Price reference_price = 0;      // 0: no band
};
inline constexpr std::int64_t kMaxBandPercent = 1000;

// True when every field is within range (tick, lot in [1, max], 1 <= min <= max
// <= kMaxQuantity, band in [0, kMaxBandPercent], reference in [0, kMaxPrice]).
bool valid(const Instrument& inst);

// Instrument checks for a limit price (skipped for price 0 = market) and a
// quantity, in order: tick, lot, min (if check_min), max, band.
RejectReason check(const Instrument& inst, Price price, Quantity quantity, bool check_min);

// Returns NONE when the command is well formed. Does not look at engine state
// (the duplicate-id check happens afterwards, in the engine).
// Checks, in order: side, type, tif, quantity, price, notional.
RejectReason validate(const NewOrder& order);
// validate(), then the stp mode, the post-only combination and the display quantity
// (INVALID_DISPLAY_QUANTITY: a non-zero display_quantity that is negative, not below
// quantity, or on a MARKET, IOC or FOK order), then the stop price (INVALID_STOP_PRICE outside
// [0, kMaxPrice]; INVALID_POST_ONLY with a stop price). Its lot rule is the engine's (instrument).
RejectReason validate_full(const NewOrder& order);

}  // namespace bourse::engine
