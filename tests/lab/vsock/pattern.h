// File: pattern.h
// What the vsock lab guest and host agree on: ports, sizes and a deterministic byte pattern,
// so both sides can check data without shipping it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace supermachine::lab {

inline constexpr uint32_t kGuestEchoPort = 5000;   // Guest echo server.
inline constexpr uint32_t kHostPort = 6000;        // Guest connects here: "<path>_6000".
inline constexpr uint32_t kClosedGuestPort = 5999;  // Nobody listens.
inline constexpr size_t kGuestPayloadBytes = 1 << 20;

// Byte `offset` of stream `seed`'s pattern (xorshift-style mixing; any mismatch, shift or
// duplication shows).
inline uint8_t PatternByte(uint64_t seed, uint64_t offset) {
  uint64_t x = (offset + 1) * 0x9e3779b97f4a7c15ull ^ (seed * 0xbf58476d1ce4e5b9ull);
  x ^= x >> 31;
  return static_cast<uint8_t>(x >> 24);
}

inline void FillPattern(uint8_t* p, size_t n, uint64_t seed, uint64_t start = 0) {
  for (size_t i = 0; i < n; ++i) {
    p[i] = PatternByte(seed, start + i);
  }
}

}  // namespace supermachine::lab
