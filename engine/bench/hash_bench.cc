// What the event hash costs: ns per event of hash_event, chained as the engine chains
// it, over cache-resident events (the engine hashes each event as it emits it), side by
// side with the definition it replaced; and the share of an insert that makes, from the
// events per insert engine_bench reports (2.81).
//
//   bazel run -c opt //engine:engine_hash_bench
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

#include "bourse/engine/event.hpp"

using namespace bourse::engine;

namespace {

// The definition before: 16 dependent multiply-folds per event (FNV-1a over words).
std::uint64_t previous_hash_event(std::uint64_t h, const Event& e) {
  const std::uint64_t words[16] = {
      static_cast<std::uint64_t>(e.kind),  e.order_id, e.symbol_id, e.reason,
      static_cast<std::uint64_t>(e.status), static_cast<std::uint64_t>(e.aggressor_side),
      e.maker_order_id, e.taker_order_id, e.maker_account, e.taker_account,
      static_cast<std::uint64_t>(e.price), static_cast<std::uint64_t>(e.quantity),
      static_cast<std::uint64_t>(e.maker_remaining), static_cast<std::uint64_t>(e.taker_remaining),
      static_cast<std::uint64_t>(e.filled), static_cast<std::uint64_t>(e.remaining)};
  for (std::uint64_t w : words) {
    h = (h ^ w) * 0x100000001b3ULL;
    h ^= h >> 32;
  }
  return h;
}

template <typename Hash>
double ns_per_event(const std::vector<Event>& events, int reps, Hash hash, std::uint64_t& sink) {
  const auto start = std::chrono::steady_clock::now();
  std::uint64_t h = kEventHashSeed;
  for (int r = 0; r < reps; ++r)
    for (const Event& e : events) h = hash(h, e);
  sink ^= h;
  const double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  return ns / (static_cast<double>(events.size()) * reps);
}

}  // namespace

int main() {
  std::mt19937_64 rng(7);
  std::vector<Event> events(4096);  // 384 KiB: in cache, as an event just emitted is
  for (Event& e : events)
    e = Event::trade(rng() % 10, rng() % 1000000, rng() % 1000000, rng() % 8, rng() % 8,
                     100 + static_cast<Price>(rng() % 10), 1 + static_cast<Quantity>(rng() % 9),
                     Side::BUY, static_cast<Quantity>(rng() % 5), static_cast<Quantity>(rng() % 5));
  std::uint64_t sink = 0;
  const double insert_events = 2.81;
  for (int round = 1; round <= 3; ++round) {
    const double before = ns_per_event(events, 2000, previous_hash_event, sink);
    const double now = ns_per_event(events, 2000, [](std::uint64_t h, const Event& e) { return hash_event(h, e); }, sink);
    std::printf("round %d: previous %.2f ns/event, now %.2f ns/event (%.1fx); per insert (%.2f events) %.1f vs %.1f ns\n",
                round, before, now, before / now, insert_events, before * insert_events, now * insert_events);
  }
  return sink == 42 ? 1 : 0;  // keeps the hashing from being optimized away
}
