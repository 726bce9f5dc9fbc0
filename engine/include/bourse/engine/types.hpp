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
};

enum class CancelReason : std::uint8_t {
  NONE = 0,
  USER = 1,
  IOC_REMAINDER = 2,
  MARKET_REMAINDER = 3,
  FOK_UNFILLABLE = 4,
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
};

struct CancelOrder {
  OrderId order_id = 0;
  AccountId account_id = 0;
  SymbolId symbol_id = 0;
};

// Returns NONE when the command is well formed. Does not look at engine state
// (the duplicate-id check happens afterwards, in the engine).
RejectReason validate(const NewOrder& order);

}  // namespace bourse::engine
