// Single-thread throughput/latency benchmark of the matching engine.
//
//   bazel run -c opt //engine:engine_bench -- [ops] [runs] [scenario] [path]
//       (default 2,000,000 ops per scenario, 5 runs, every scenario; the median
//       run is printed; a scenario name runs that one alone, e.g. under perf, and a
//       path, "single" or "batched", only that way of calling the engine)
//
// Commands are generated up front (the generator runs its own engine to know
// which orders rest), then replayed on a fresh engine, so the timed loop does
// nothing but call the engine: one call per command, and (the "batched" line,
// alternating with it) the whole stream as one Engine::execute batch. Events go to a handler that only counts them.
// Throughput runs are untimed per op; a separate run times every op for the
// latency percentiles (that clock read costs ~20-40 ns per op).
//
// mixed  : ~1,000 resting orders, one symbol; exchange-core's throughput mix:
//          9% GTC limit, 3% IOC, 6% cancel, 82% modify (price change).
// insert : alternating buy/sell GTC limits in a 10-tick band (crosses often).
// multi  : 10,000 symbols, ~1,000,000 resting orders, the mixed workload
//          spread over random symbols (cost of symbol lookup and a big heap).
// cascade: 1,000 buy stops (market, 1 lot) at the 1,000 ticks above the last trade,
//          asks of 1 lot on each of 2,000 ticks: one command sweeping 1,000 ticks
//          triggers all of them at once ("sweep"), or one lot at the first tick sets
//          off a chain, each stop's trade triggering the next ("chain"). Timed: that one
//          command, against the same command on the same book without the stops.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <malloc.h>
#include <random>
#include <string>
#include <vector>

#include "bourse/engine/engine.hpp"

using namespace bourse::engine;
using Clock = std::chrono::steady_clock;

namespace {

constexpr Price kMid = 100'000;

// SUBMIT: the whole order; CANCEL/MODIFY: order_id, account_id, symbol_id, price, quantity.
using Command = Engine::Command;
constexpr Command::Op SUBMIT = Command::Op::SUBMIT, CANCEL = Command::Op::CANCEL,
                      MODIFY = Command::Op::MODIFY;

void apply(Engine& eng, const Command& c) { eng.execute(c); }

class CountingHandler final : public EventHandler {
 public:
  void on_event(const Event&) override { ++events; }
  std::uint64_t events = 0;
};

// Tracks which order ids rest (from the events) so the generator only cancels
// and modifies live orders. Ids are dense, so a byte per id is enough.
class LiveTracker final : public EventHandler {
 public:
  void on_event(const Event& e) override {
    if (e.kind == EventKind::TRADE && e.maker_remaining == 0) {
      set(e.maker_order_id, false);
    } else if (e.kind == EventKind::CANCELLED) {
      set(e.order_id, false);
    } else if (e.kind == EventKind::DONE) {
      set(e.order_id, e.remaining > 0);
    }
  }
  bool alive(OrderId id) const { return id < live_.size() && live_[id]; }

  // A random live order id, or 0 if none.
  OrderId pick(std::mt19937_64& rng) {
    while (!ids_.empty()) {
      std::size_t i = rng() % ids_.size();
      OrderId id = ids_[i];
      if (alive(id)) return id;
      ids_[i] = ids_.back();
      ids_.pop_back();
    }
    return 0;
  }
  std::size_t count = 0;

 private:
  void set(OrderId id, bool v) {
    if (id >= live_.size()) live_.resize(id * 2 + 1024, 0);
    if (v && !live_[id]) ids_.push_back(id);
    if (live_[id] != v) v ? ++count : --count;
    live_[id] = v;
  }
  std::vector<std::uint8_t> live_;
  std::vector<OrderId> ids_;
};

Price passive_price(Side side, std::mt19937_64& rng) {
  // Mostly behind the touch, sometimes a tick or two through it (so some trade).
  Price off = static_cast<Price>(rng() % 52) - 2;
  return side == Side::BUY ? kMid - off : kMid + 1 + off;
}

struct Workload {
  std::vector<Command> prefill;  // builds the resting book (untimed)
  std::vector<Command> ops;      // timed
  std::size_t expected_orders;
};

// The exchange-core mix over `symbols` symbols with about `resting` orders in all.
Workload mixed(std::size_t ops, std::uint32_t symbols, std::size_t resting, std::uint64_t seed) {
  Workload w;
  LiveTracker live;
  Engine eng(live, resting * 2);
  std::mt19937_64 rng(seed);
  OrderId next_id = 1;
  auto emit = [&](std::vector<Command>& out, const Command& c) {
    out.push_back(c);
    apply(eng, c);
  };
  auto gtc = [&](std::vector<Command>& out, Side side, SymbolId sym) {
    emit(out, Command{SUBMIT,
                      NewOrder{next_id++, 1 + rng() % 100, sym, side, OrderType::LIMIT,
                               TimeInForce::GTC, passive_price(side, rng),
                               static_cast<Quantity>(1 + rng() % 100)}});
  };
  while (live.count < resting) {
    gtc(w.prefill, rng() % 2 ? Side::BUY : Side::SELL, static_cast<SymbolId>(rng() % symbols));
  }
  const std::size_t lo = resting * 9 / 10, hi = resting * 11 / 10;
  w.ops.reserve(ops);
  while (w.ops.size() < ops) {
    const unsigned r = static_cast<unsigned>(rng() % 100);
    const Side side = rng() % 2 ? Side::BUY : Side::SELL;
    const SymbolId sym = static_cast<SymbolId>(rng() % symbols);
    // Steer the book size back towards the target.
    const bool grow = live.count < lo, shrink = live.count > hi;
    if ((r < 9 && !shrink) || (r < 15 && grow)) {
      gtc(w.ops, side, sym);
    } else if (r < 12) {
      emit(w.ops, Command{SUBMIT,
                          NewOrder{next_id++, 1 + rng() % 100, sym, side, OrderType::LIMIT,
                                   TimeInForce::IOC, side == Side::BUY ? kMid + 5 : kMid - 4,
                                   static_cast<Quantity>(1 + rng() % 50)}});
    } else if (OrderId victim = live.pick(rng); victim != 0) {
      const OrderView o = *eng.order(victim);
      NewOrder c{victim, o.account_id, o.symbol_id};
      if (r < 18) {
        emit(w.ops, Command{CANCEL, c});
      } else {  // modify: new price, same open quantity
        c.price = passive_price(o.side, rng);
        c.quantity = o.remaining;
        emit(w.ops, Command{MODIFY, c});
      }
    }
  }
  w.expected_orders = next_id;
  return w;
}

Workload insert_only(std::size_t ops) {
  Workload w;
  std::mt19937_64 rng(2);
  for (std::size_t i = 0; i < ops; ++i) {
    const Side side = i % 2 ? Side::SELL : Side::BUY;
    const Price px = kMid - 5 + static_cast<Price>(rng() % 10);
    w.ops.push_back(Command{SUBMIT,
                            NewOrder{i + 1, 1 + rng() % 100, 1, side, OrderType::LIMIT,
                                     TimeInForce::GTC, px,
                                     static_cast<Quantity>(1 + rng() % 100)}});
  }
  w.expected_orders = ops + 1;
  return w;
}

long rss_kb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  }
  return 0;
}

struct Run {
  double ops_per_s;
  std::size_t live;
  std::uint64_t events;
};

// One call per command, or (batched) the whole stream as one Engine::execute batch.
Run throughput(const Workload& w, bool batched = false) {
  CountingHandler sink;
  Engine eng(sink, w.expected_orders);
  if (batched) {  // the same books either way; batched, a profile of the batched run is mostly the batch
    eng.execute(w.prefill.data(), w.prefill.size());
  } else {
    for (const Command& c : w.prefill) apply(eng, c);
  }
  const auto start = Clock::now();
  if (batched) {
    eng.execute(w.ops.data(), w.ops.size());
  } else {
    for (const Command& c : w.ops) apply(eng, c);
  }
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  return Run{static_cast<double>(w.ops.size()) / secs, eng.live_orders(), sink.events};
}

// The floor under a workload: only finding each command's order by id (the first
// step of every cancel and modify, and a submit's duplicate check), in the book the
// prefill built, nothing else. Ops per second.
double lookup_floor(const Workload& w) {
  CountingHandler sink;
  Engine eng(sink, w.expected_orders);
  for (const Command& c : w.prefill) apply(eng, c);
  std::uint64_t found = 0;
  const auto start = Clock::now();
  for (const Command& c : w.ops) {
    const auto view = eng.order(c.order.order_id);
    found += view ? static_cast<std::uint64_t>(view->remaining) : 1;
  }
  const double secs = std::chrono::duration<double>(Clock::now() - start).count();
  if (found == 0) std::printf(" ");  // keeps the loop
  return static_cast<double>(w.ops.size()) / secs;
}

void latency(const Workload& w, std::int64_t out[4]) {
  CountingHandler sink;
  Engine eng(sink, w.expected_orders);
  for (const Command& c : w.prefill) apply(eng, c);
  std::vector<std::int64_t> ns;
  ns.reserve(w.ops.size());
  for (const Command& c : w.ops) {
    const auto t0 = Clock::now();
    apply(eng, c);
    ns.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
  }
  const double ps[3] = {0.50, 0.99, 0.9999};
  for (int i = 0; i < 3; ++i) {
    const auto k = static_cast<std::ptrdiff_t>(ps[i] * static_cast<double>(ns.size() - 1));
    std::nth_element(ns.begin(), ns.begin() + k, ns.end());
    out[i] = ns[static_cast<std::size_t>(k)];
  }
  out[3] = *std::max_element(ns.begin(), ns.end());
}

// Which ways of calling the engine to time: "" both, "single" or "batched" (under perf).
std::string only_path;

void report(const char* name, const Workload& w, int runs) {
  if (only_path == "batched") {
    for (int i = 0; i < runs; ++i) {
      std::printf("%-7s batched: %.0f ops/s\n", name, throughput(w, true).ops_per_s);
    }
    return;
  }
  std::vector<double> rates, batched_rates;
  Run last{};
  std::uint64_t batched_events = 0;
  for (int i = 0; i < runs; ++i) {  // alternating, so that both see the same machine
    last = throughput(w);
    if (only_path == "single") {
      rates.push_back(last.ops_per_s);
      batched_rates.push_back(0);
      continue;
    }
    rates.push_back(last.ops_per_s);
    const Run batched = throughput(w, true);
    batched_rates.push_back(batched.ops_per_s);
    batched_events = batched.events;
  }
  std::sort(rates.begin(), rates.end());
  std::sort(batched_rates.begin(), batched_rates.end());
  std::int64_t lat[4];
  latency(w, lat);
  std::printf("%-7s median %11.0f ops/s (min %.0f, max %.0f, %d runs)  "
              "p50 %lld ns  p99 %lld ns  p99.99 %lld ns  max %lld ns  "
              "events/op %.2f  resting at end %zu\n",
              name, rates[rates.size() / 2], rates.front(), rates.back(), runs,
              static_cast<long long>(lat[0]), static_cast<long long>(lat[1]),
              static_cast<long long>(lat[2]), static_cast<long long>(lat[3]),
              static_cast<double>(last.events) / static_cast<double>(w.ops.size()), last.live);
  if (only_path == "single") return;
  std::printf("%-7s batched: median %11.0f ops/s (min %.0f, max %.0f): one Engine::execute over the "
              "stream, the next commands fetched ahead; %s events\n",
              name, batched_rates[batched_rates.size() / 2], batched_rates.front(), batched_rates.back(),
              batched_events == last.events ? "the same" : "DIFFERENT");
}

// Resident memory per resting order: RSS growth while 1M orders rest across
// 10,000 symbols (pool node + id-map slot + level share + per-book overhead).
void memory() {
  const Workload w = mixed(0, 10'000, 1'000'000, 5);
  malloc_trim(0);  // hand the generator's freed memory back, so it is not reused unseen
  const long before = rss_kb();
  {
    NullEventHandler sink;
    Engine eng(sink, 16);  // grow naturally: count what growth really costs
    for (const Command& c : w.prefill) apply(eng, c);
    const long after = rss_kb();
    std::printf("memory  %zu resting orders, %zu symbols: RSS +%ld KiB = %.0f bytes/order\n",
                eng.live_orders(), eng.symbol_count(), after - before,
                1024.0 * static_cast<double>(after - before) /
                    static_cast<double>(eng.live_orders()));
  }
}

// Counts events, and the stops that entered.
class TriggerCounter final : public EventHandler {
 public:
  void on_event(const Event& e) override {
    ++events;
    triggered += e.kind == EventKind::TRIGGERED;
  }
  std::uint64_t events = 0, triggered = 0;
};

// The time of the one command that sets off the stops (or of the same command on the
// same book without them), in ns; the book is built untimed on a fresh engine.
double cascade_ns(bool chain, bool with_stops, TriggerCounter& sink) {
  constexpr int kStops = 1000, kAskTicks = 2000;
  Engine eng(sink, 8192);
  OrderId id = 1;
  const auto limit = [&](AccountId acct, Side side, Price px, Quantity qty, TimeInForce tif) {
    return NewOrder{id++, acct, 1, side, OrderType::LIMIT, tif, px, qty};
  };
  eng.submit(limit(1, Side::SELL, kMid, 1, TimeInForce::GTC));  // a print at kMid: the last trade
  eng.submit(limit(3, Side::BUY, kMid, 1, TimeInForce::GTC));
  for (int i = 1; i <= kAskTicks; ++i) eng.submit(limit(1, Side::SELL, kMid + i, 1, TimeInForce::GTC));
  for (int i = 1; with_stops && i <= kStops; ++i) {
    NewOrder stop{id++, 2, 1, Side::BUY, OrderType::MARKET, TimeInForce::IOC, 0, 1};
    stop.stop_price = kMid + i;
    eng.submit(stop);
  }
  const Quantity lots = chain ? 1 : kStops;
  const NewOrder go = limit(3, Side::BUY, kMid + lots, lots, TimeInForce::IOC);
  sink.events = sink.triggered = 0;
  const auto t0 = Clock::now();
  eng.submit(go);
  const auto t1 = Clock::now();
  if (with_stops && sink.triggered != kStops) {
    std::fprintf(stderr, "cascade: %llu stops entered, not %d\n",
                 static_cast<unsigned long long>(sink.triggered), kStops);
    std::exit(1);
  }
  return std::chrono::duration<double, std::nano>(t1 - t0).count();
}

void cascade(int runs) {
  for (const bool chain : {false, true}) {
    std::vector<double> with, without;
    TriggerCounter sink;
    std::uint64_t events = 0;
    for (int r = 0; r < runs; ++r) {  // alternating, so that both see the same machine
      with.push_back(cascade_ns(chain, true, sink));
      events = sink.events;
      without.push_back(cascade_ns(chain, false, sink));
    }
    std::sort(with.begin(), with.end());
    std::sort(without.begin(), without.end());
    const double w = with[with.size() / 2], wo = without[without.size() / 2];
    std::printf("cascade %-5s 1,000 stops: the command %8.1f us (without the stops %6.1f us): %5.0f ns "
                "per stop entered (its trade included), %llu events, median of %d\n",
                chain ? "chain" : "sweep", w / 1e3, wo / 1e3, (w - wo) / 1000.0,
                static_cast<unsigned long long>(events), runs);
  }
}

}  // namespace

int main(int argc, char** argv) {
  const std::size_t ops = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 2'000'000;
  const int runs = argc > 2 ? std::atoi(argv[2]) : 5;
  const std::string only = argc > 3 ? argv[3] : "";
  only_path = argc > 4 ? argv[4] : "";
  const auto wanted = [&](const char* name) { return only.empty() || only == name; };
  if (wanted("mixed")) report("mixed", mixed(ops, 1, 1000, 1), runs);
  if (wanted("insert")) report("insert", insert_only(ops), runs);
  if (wanted("multi")) {
    const Workload w = mixed(ops, 10'000, 1'000'000, 3);
    report("multi", w, runs);
    if (only_path != "batched") {  // under perf, the batch alone
      std::printf("multi   floor: finding each command's order by id alone %.0f ops/s\n", lookup_floor(w));
    }
  }
  if (wanted("memory")) memory();
  if (wanted("cascade")) cascade(std::max(runs, 1) * 20);
  return 0;
}
