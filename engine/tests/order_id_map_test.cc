#include "bourse/engine/order_id_map.hpp"

#include <gtest/gtest.h>

#include <random>
#include <unordered_map>
#include <vector>

namespace bourse::engine {
namespace {

TEST(OrderIdMap, FindPutOverwrite) {
  OrderIdMap m(4);
  EXPECT_EQ(m.find(0), OrderIdMap::kAbsent);
  m.put(0, 5);
  m.put(UINT64_MAX, 6);
  EXPECT_EQ(m.find(0), 5u);
  EXPECT_EQ(m.find(UINT64_MAX), 6u);
  m.put(0, OrderIdMap::kMaxValue);
  EXPECT_EQ(m.find(0), OrderIdMap::kMaxValue);
  EXPECT_EQ(m.size(), 2u);
}

TEST(OrderIdMap, MatchesStdMapThroughGrowth) {
  OrderIdMap m(1);
  std::unordered_map<OrderId, std::uint32_t> ref;
  std::mt19937_64 rng(42);
  for (int i = 0; i < 200000; ++i) {
    // Mix sequential and random keys: both patterns occur in practice.
    OrderId k = (i % 2) ? static_cast<OrderId>(i) : rng() % 50000;
    std::uint32_t v = static_cast<std::uint32_t>(rng() % OrderIdMap::kMaxValue);
    m.put(k, v);
    ref[k] = v;
  }
  EXPECT_EQ(m.size(), ref.size());
  EXPECT_LE(m.size() * 2, m.capacity());
  for (const auto& [k, v] : ref) ASSERT_EQ(m.find(k), v) << k;
  for (OrderId k = 1'000'000; k < 1'010'000; ++k) ASSERT_EQ(m.find(k), OrderIdMap::kAbsent);
}

TEST(OrderIdMap, EraseMatchesStdMapWithCollidingRuns) {
  // Few slots and many keys: long probe runs, which erase must keep reachable.
  OrderIdMap m(8);
  std::unordered_map<OrderId, std::uint32_t> ref;
  std::mt19937_64 rng(7);
  for (int i = 0; i < 300000; ++i) {
    OrderId k = rng() % 3000;
    if (rng() % 3 == 0) {
      m.erase(k);
      ref.erase(k);
    } else {
      std::uint32_t v = static_cast<std::uint32_t>(rng() % OrderIdMap::kMaxValue);
      m.put(k, v);
      ref[k] = v;
    }
    if (i % 9973 == 0) {
      for (OrderId q = 0; q < 3000; ++q) {
        auto it = ref.find(q);
        ASSERT_EQ(m.find(q), it == ref.end() ? OrderIdMap::kAbsent : it->second) << q;
      }
    }
  }
  EXPECT_EQ(m.size(), ref.size());
  m.erase(123456789);  // absent: nothing happens
  EXPECT_EQ(m.size(), ref.size());
}

TEST(OrderIdMap, RunsOfConsecutiveIdsWithRandomRetirementMatchStdMap) {
  // As the engine uses it: ids minted in sequence (four to a cache line of slots), each
  // erased at a random later time, so lines fill, drain and are probed past.
  OrderIdMap m(64);
  std::unordered_map<OrderId, std::uint32_t> ref;
  std::vector<OrderId> live;
  std::mt19937_64 rng(11);
  OrderId next = (OrderId{1} << 40) + 3;  // not aligned to a line of four
  for (int i = 0; i < 200000; ++i) {
    const std::uint32_t v = static_cast<std::uint32_t>(i);
    m.put(next, v);
    ref[next] = v;
    live.push_back(next++);
    if (live.size() > 5000 || rng() % 2 == 0) {
      const std::size_t at = rng() % live.size();
      EXPECT_TRUE(m.erase_if_value(live[at], ref[live[at]]));
      ref.erase(live[at]);
      live[at] = live.back();
      live.pop_back();
    }
  }
  ASSERT_EQ(m.size(), ref.size());
  for (OrderId q = (OrderId{1} << 40); q < next + 8; ++q) {
    auto it = ref.find(q);
    ASSERT_EQ(m.find(q), it == ref.end() ? OrderIdMap::kAbsent : it->second) << q;
  }
}

}  // namespace
}  // namespace bourse::engine
