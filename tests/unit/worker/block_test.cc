// File: block_test.cc
// virtio-blk request handling against a temp file.
#include "worker/devices/virtio/block.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "gtest/gtest.h"
#include "tests/unit/worker/virtq_builder.h"

namespace supermachine::devices::virtio {
namespace {

using testing::VirtqBuilder;
namespace fs = std::filesystem;

constexpr uint64_t kHdr = VirtqBuilder::kData;
constexpr uint64_t kBuf = VirtqBuilder::kData + 0x1000;
constexpr uint64_t kStatus = VirtqBuilder::kData + 0x3000;

class BlockTest : public ::testing::Test {
 protected:
  void SetUp() override {
    path_ = fs::temp_directory_path() /
            ("sm-block-test-" + std::to_string(getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::string content(size_t{8} * 512, '\0');
    for (size_t i = 0; i < content.size(); ++i) {
      content[i] = static_cast<char>(i / 512 + 'A');  // Sector n is filled with 'A'+n.
    }
    std::ofstream(path_, std::ios::binary) << content;
    auto m = memory::GuestMemory::Create({{.guest_base = 0, .size = 1 << 20}});
    ASSERT_TRUE(m.ok());
    mem_.emplace(*std::move(m));
    vq_.emplace(*mem_, 16);
    queue_ = Queue(vq_->State());
  }
  void TearDown() override { fs::remove(path_); }

  std::unique_ptr<Block> Open(bool ro) {
    auto b = Block::Open({.path = path_.string(), .read_only = ro, .id = "test-disk-id"});
    EXPECT_TRUE(b.ok()) << b.status();
    return b.ok() ? *std::move(b) : nullptr;
  }
  // Publishes header + data + status, runs the device, returns the status byte.
  uint8_t Request(Block& dev, uint32_t type, uint64_t sector, uint32_t data_len,
                  bool data_device_writes) {
    (void)mem_->WriteObj<uint32_t>(kHdr, type);
    (void)mem_->WriteObj<uint32_t>(kHdr + 4, 0);
    (void)mem_->WriteObj<uint64_t>(kHdr + 8, sector);
    (void)mem_->WriteObj<uint8_t>(kStatus, 0xee);
    std::vector<testing::DescSpec> descs = {{.addr = kHdr, .len = 16}};
    if (data_len > 0) {
      descs.push_back({.addr = kBuf, .len = data_len, .write = data_device_writes});
    }
    descs.push_back({.addr = kStatus, .len = 1, .write = true});
    vq_->AddChain(descs);
    auto used = dev.ProcessQueue(0, queue_, *mem_);
    EXPECT_TRUE(used.ok() && *used);
    return *mem_->ReadObj<uint8_t>(kStatus);
  }
  std::string FileBytes() {
    std::ifstream in(path_, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

  fs::path path_;
  std::optional<memory::GuestMemory> mem_;
  std::optional<VirtqBuilder> vq_;
  Queue queue_;
};

TEST_F(BlockTest, ReportsCapacityInSectors) {
  auto dev = Open(false);
  uint64_t cap = 0;
  dev->ReadConfig(0, absl::Span<uint8_t>(reinterpret_cast<uint8_t*>(&cap), 8));
  EXPECT_EQ(cap, 8u);
}

TEST_F(BlockTest, ReadOnlyDiskOffersTheRoFeature) {
  EXPECT_TRUE(Open(true)->features() & kFeatureBlockRo);
  EXPECT_FALSE(Open(false)->features() & kFeatureBlockRo);
}

TEST_F(BlockTest, ReadsSectorsIntoGuestMemory) {
  auto dev = Open(true);
  EXPECT_EQ(Request(*dev, kBlockRequestIn, 2, 1024, true), kBlockStatusOk);
  EXPECT_EQ(*mem_->ReadObj<char>(kBuf), 'C');
  EXPECT_EQ(*mem_->ReadObj<char>(kBuf + 600), 'D');
  EXPECT_EQ(vq_->UsedLen(0), 1025u);  // Data + status byte.
}

TEST_F(BlockTest, WritesGuestDataToTheFile) {
  auto dev = Open(false);
  std::vector<uint8_t> data(512, 'z');
  ASSERT_TRUE(mem_->Write(kBuf, data).ok());
  EXPECT_EQ(Request(*dev, kBlockRequestOut, 1, 512, false), kBlockStatusOk);
  EXPECT_EQ(FileBytes().substr(512, 512), std::string(512, 'z'));
  EXPECT_EQ(vq_->UsedLen(0), 1u);
}

TEST_F(BlockTest, WriteToReadOnlyDiskIsAnIoError) {
  auto dev = Open(true);
  EXPECT_EQ(Request(*dev, kBlockRequestOut, 1, 512, false), kBlockStatusIoErr);
  EXPECT_EQ(FileBytes()[512], 'B');
}

TEST_F(BlockTest, ReadPastTheEndIsAnIoError) {
  auto dev = Open(true);
  EXPECT_EQ(Request(*dev, kBlockRequestIn, 7, 1024, true), kBlockStatusIoErr);
}

TEST_F(BlockTest, HugeSectorNumberIsAnIoErrorNotAnOverflow) {
  auto dev = Open(true);
  EXPECT_EQ(Request(*dev, kBlockRequestIn, ~0ull / 256, 512, true), kBlockStatusIoErr);
}

TEST_F(BlockTest, ReadIntoDeviceReadableBufferIsAnIoError) {
  auto dev = Open(true);
  EXPECT_EQ(Request(*dev, kBlockRequestIn, 0, 512, /*data_device_writes=*/false),
            kBlockStatusIoErr);
}

TEST_F(BlockTest, HostReadFailureIsAnIoError) {
  auto dev = Open(true);
  fs::resize_file(path_, 0);  // The backing file shrinks under the device: reads hit EOF.
  EXPECT_EQ(Request(*dev, kBlockRequestIn, 0, 512, true), kBlockStatusIoErr);
}

TEST_F(BlockTest, FlushSucceeds) {
  auto dev = Open(false);
  EXPECT_EQ(Request(*dev, kBlockRequestFlush, 0, 0, false), kBlockStatusOk);
}

TEST_F(BlockTest, GetIdReturnsTheConfiguredId) {
  auto dev = Open(true);
  EXPECT_EQ(Request(*dev, kBlockRequestGetId, 0, 20, true), kBlockStatusOk);
  char id[21] = {};
  ASSERT_TRUE(mem_->Read(kBuf, absl::Span<uint8_t>(reinterpret_cast<uint8_t*>(id), 20)).ok());
  EXPECT_STREQ(id, "test-disk-id");
}

TEST_F(BlockTest, UnknownRequestTypeIsUnsupported) {
  auto dev = Open(true);
  EXPECT_EQ(Request(*dev, 99, 0, 0, false), kBlockStatusUnsupp);
}

TEST_F(BlockTest, MalformedChainIsCompletedWithZeroLength) {
  auto dev = Open(true);
  vq_->SetDesc(0, kHdr, 16, /*NEXT*/ 1, 0);  // Loops onto itself.
  vq_->Publish(0);
  auto used = dev->ProcessQueue(0, queue_, *mem_);
  ASSERT_TRUE(used.ok());
  EXPECT_EQ(vq_->UsedIdx(), 1);
  EXPECT_EQ(vq_->UsedLen(0), 0u);
}

TEST_F(BlockTest, OpenFailsWithThePathForAMissingFile) {
  auto b = Block::Open({.path = "/nonexistent/disk.img", .read_only = true});
  EXPECT_EQ(b.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(b.status().message().find("/nonexistent/disk.img"), absl::string_view::npos);
}

}  // namespace
}  // namespace supermachine::devices::virtio
