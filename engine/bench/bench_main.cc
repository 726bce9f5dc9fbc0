// Single-thread throughput/latency benchmark of one symbol's book.
//
//   engine_bench [ops]        (default 2,000,000 per scenario)
//
// Scenario "mixed": ~1,000 resting orders; per op 9% GTC limit, 3% IOC,
// 6% cancel, 82% cancel+replace at a new price (counted as one op).
// Scenario "insert": alternating buy/sell GTC limits in a 10-tick band (crosses
// often, so it exercises matching).
// Latency is wall time per op, including the (trivial) event handler.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <vector>

#include "bourse/engine/engine.hpp"

using namespace bourse::engine;
using Clock = std::chrono::steady_clock;

namespace {

constexpr SymbolId kSym = 1;
constexpr Price kMid = 100'000;

// Tracks which of our order ids still rest, from the events, so the driver only
// cancels live orders. Ids are dense, so a byte per id is enough.
class LiveTracker final : public EventHandler {
 public:
  void on_event(const Event& e) override {
    if (e.kind == EventKind::TRADE && e.maker_remaining == 0) {
      set(e.maker_order_id, false);
    } else if (e.kind == EventKind::DONE) {
      set(e.order_id, e.remaining > 0);
      if (e.remaining > 0) candidates.push_back(e.order_id);
    }
  }
  bool alive(OrderId id) const { return id < live.size() && live[id]; }

  // Random live order id (lazily dropping dead candidates), or 0 if none.
  OrderId pick(std::mt19937_64& rng) {
    while (!candidates.empty()) {
      std::size_t i = rng() % candidates.size();
      OrderId id = candidates[i];
      candidates[i] = candidates.back();
      candidates.pop_back();
      if (alive(id)) return id;
    }
    return 0;
  }

  std::vector<OrderId> candidates;
  std::size_t count = 0;

 private:
  void set(OrderId id, bool v) {
    if (id >= live.size()) live.resize(id * 2 + 1024, 0);
    if (live[id] != v) v ? ++count : --count;
    live[id] = v;
  }
  std::vector<std::uint8_t> live;
};

struct Stats {
  double ops_per_s;
  std::int64_t p50, p99, p9999, max;
};

Stats summarize(std::vector<std::int64_t>& ns, double seconds) {
  auto pct = [&](double p) {
    std::size_t k = static_cast<std::size_t>(p * static_cast<double>(ns.size() - 1));
    std::nth_element(ns.begin(), ns.begin() + static_cast<std::ptrdiff_t>(k), ns.end());
    return ns[k];
  };
  Stats s{static_cast<double>(ns.size()) / seconds, pct(0.50), pct(0.99), pct(0.9999), 0};
  s.max = *std::max_element(ns.begin(), ns.end());
  return s;
}

void print(const char* name, const Stats& s, std::size_t extra) {
  std::printf("%-7s %12.0f ops/s   p50 %6lld ns   p99 %6lld ns   p99.99 %7lld ns   max %8lld ns   %s %zu\n",
              name, s.ops_per_s, static_cast<long long>(s.p50), static_cast<long long>(s.p99),
              static_cast<long long>(s.p9999), static_cast<long long>(s.max),
              "resting at end:", extra);
}

Price passive_price(Side side, std::mt19937_64& rng) {
  // Mostly behind the touch, sometimes a tick or two through it (so some trade).
  Price off = static_cast<Price>(rng() % 52) - 2;
  return side == Side::BUY ? kMid - off : kMid + 1 + off;
}

void run_mixed(std::size_t ops) {
  LiveTracker live;
  Engine eng(live, 4 * ops);
  std::mt19937_64 rng(1);
  OrderId next_id = 1;
  auto gtc = [&](Side side) {
    eng.submit(NewOrder{next_id++, 1 + rng() % 100, kSym, side, OrderType::LIMIT,
                        TimeInForce::GTC, passive_price(side, rng),
                        static_cast<Quantity>(1 + rng() % 100)});
  };
  while (live.count < 1000) gtc(rng() % 2 ? Side::BUY : Side::SELL);

  std::vector<std::int64_t> ns;
  ns.reserve(ops);
  const auto start = Clock::now();
  for (std::size_t i = 0; i < ops; ++i) {
    const unsigned r = static_cast<unsigned>(rng() % 100);
    const Side side = rng() % 2 ? Side::BUY : Side::SELL;
    // Steer the book size back towards ~1,000 resting orders.
    const bool grow = live.count < 900, shrink = live.count > 1100;
    const auto t0 = Clock::now();
    if ((r < 9 && !shrink) || (r < 15 && grow)) {
      gtc(side);
    } else if (r < 12) {
      eng.submit(NewOrder{next_id++, 1 + rng() % 100, kSym, side, OrderType::LIMIT,
                          TimeInForce::IOC, side == Side::BUY ? kMid + 5 : kMid - 4,
                          static_cast<Quantity>(1 + rng() % 50)});
    } else if (OrderId victim = live.pick(rng); victim != 0) {
      const std::optional<OrderView> o = eng.order(victim);
      eng.cancel(CancelOrder{victim, o->account_id, kSym});
      if (r >= 18) {  // cancel+replace: same owner and side, new id and price
        eng.submit(NewOrder{next_id++, o->account_id, kSym, o->side, OrderType::LIMIT,
                            TimeInForce::GTC, passive_price(o->side, rng), o->remaining});
      }
    }
    ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
  }
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  Stats s = summarize(ns, secs);
  print("mixed", s, eng.live_orders());
}

void run_insert(std::size_t ops) {
  NullEventHandler sink;
  Engine eng(sink, 2 * ops);
  std::mt19937_64 rng(2);
  std::vector<std::int64_t> ns;
  ns.reserve(ops);
  const auto start = Clock::now();
  for (std::size_t i = 0; i < ops; ++i) {
    const Side side = i % 2 ? Side::SELL : Side::BUY;
    const Price px = kMid - 5 + static_cast<Price>(rng() % 10);
    const auto t0 = Clock::now();
    eng.submit(NewOrder{i + 1, 1 + rng() % 100, kSym, side, OrderType::LIMIT, TimeInForce::GTC,
                        px, static_cast<Quantity>(1 + rng() % 100)});
    ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
  }
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  Stats s = summarize(ns, secs);
  print("insert", s, eng.live_orders());
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t ops = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 2'000'000;
  run_mixed(ops);
  run_insert(ops);
  return 0;
}
