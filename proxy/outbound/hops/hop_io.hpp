// What the hops share: exact reads, writes and the results of an I/O failure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "proxy/outbound/hops/hop.hpp"

namespace edgerelay::proxy::hops::detail {

/// Reads exactly `n` bytes (so no byte past a handshake message is taken). Empty error on success.
net::awaitable<error_code> read_exactly(tunnel::client_stream& stream, std::vector<std::uint8_t>& into, std::size_t n,
                                        phase_deadline& dl);
net::awaitable<error_code> write_all(tunnel::client_stream& stream, std::span<const std::uint8_t> bytes,
                                     phase_deadline& dl);

/// The result of a failed read or write: timeout when the deadline passed, else gone.
hop_result io_failure(const error_code& ec, const phase_deadline& dl);
hop_result failure(hop_outcome o, unsigned code = 0);

}  // namespace edgerelay::proxy::hops::detail
