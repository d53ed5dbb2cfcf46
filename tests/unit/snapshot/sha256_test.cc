// File: sha256_test.cc
// worker/snapshot/sha256.h against the FIPS 180-4 example digests, and incremental updates
// in odd-sized pieces equal to one pass (the kernel hash reads its file in chunks).
#include "worker/snapshot/sha256.h"

#include <gtest/gtest.h>

#include <string>

#include "absl/strings/escaping.h"

namespace supermachine::snapshot {
namespace {

std::string Hex(const Sha256Digest& d) {
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(d.data()), d.size()));
}

TEST(Sha256, MatchesTheStandardExamples) {
  EXPECT_EQ(Hex(Sha256Of("")), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Hex(Sha256Of("abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Hex(Sha256Of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(Hex(Sha256Of(std::string(1000000, 'a'))),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, IncrementalUpdatesEqualOnePass) {
  std::string data;
  for (int i = 0; i < 300000; ++i) {
    data.push_back(static_cast<char>(i * 7 + i / 251));
  }
  Sha256 h;
  size_t at = 0;
  for (size_t piece : {size_t{0}, size_t{1}, size_t{63}, size_t{64}, size_t{65}, size_t{4095},
                       size_t{100000}}) {
    h.Update(data.data() + at, piece);
    at += piece;
  }
  h.Update(data.data() + at, data.size() - at);
  EXPECT_EQ(Hex(h.Finish()), Hex(Sha256Of(data)));
  EXPECT_NE(Hex(Sha256Of(data)), Hex(Sha256Of(data.substr(1))));
}

}  // namespace
}  // namespace supermachine::snapshot
