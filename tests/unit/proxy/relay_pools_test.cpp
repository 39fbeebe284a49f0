// relay_pools: pipes report the capacity they really have (the relay's drained-socket test relies
// on it), and pooled pipes and buffers are reused rather than made again.
#include "proxy/relay/relay_pools.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <gtest/gtest.h>

namespace edgerelay::proxy {
namespace {

TEST(RelayPools, PipeCapacityIsWhatTheKernelGave) {
  relay_pools pools;
  const auto p = pools.take_pipe();
  ASSERT_TRUE(p.has_value());
  const int real = ::fcntl(p->write_fd, F_GETPIPE_SZ);
  ASSERT_GT(real, 0);
  EXPECT_EQ(p->capacity, static_cast<std::size_t>(real));
  // Unprivileged processes may grow a pipe up to fs.pipe-max-size (1 MiB by default).
  EXPECT_LE(p->capacity, static_cast<std::size_t>(relay_pools::pipe_size));
  pools.give_back(*p);
}

TEST(RelayPools, EmptyPipeGoesBackAndIsReused) {
  relay_pools pools;
  const auto first = pools.take_pipe();
  ASSERT_TRUE(first.has_value());
  pools.give_back(*first);
  EXPECT_EQ(pools.pooled_pipes(), 1u);
  const auto again = pools.take_pipe();
  ASSERT_TRUE(again.has_value());
  EXPECT_EQ(again->read_fd, first->read_fd);
  EXPECT_EQ(again->capacity, first->capacity);
  EXPECT_EQ(pools.pooled_pipes(), 0u);
  relay_pools::discard(*again);
}

TEST(RelayPools, BufferGoesBackAndIsReused) {
  relay_pools pools;
  auto b = pools.take_buffer();
  ASSERT_NE(b, nullptr);
  const auto* address = b.get();
  pools.give_back(std::move(b));
  EXPECT_EQ(pools.take_buffer().get(), address);
}

}  // namespace
}  // namespace edgerelay::proxy
