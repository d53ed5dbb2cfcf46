// File: memory_file_test.cc
// Sparse RAM write-out (only touched pages reach the disk) and the private mapping a restore
// uses (copy-on-write: the guest's writes never reach the file).
#include "worker/snapshot/memory_file.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "tests/support/temp_dir.h"
#include "worker/base/unique_fd.h"

namespace supermachine::snapshot {
namespace {

using ::testing::HasSubstr;

constexpr uint64_t kPage = 4096;
constexpr uint64_t kMem = 64ull << 20;

memory::GuestMemory MakeMemory() {
  absl::StatusOr<memory::GuestMemory> mem =
      memory::GuestMemory::Create({{.guest_base = 0, .size = kMem}});
  EXPECT_TRUE(mem.ok()) << mem.status();
  return std::move(*mem);
}

uint64_t AllocatedBytes(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(stat(path.c_str(), &st), 0);
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

TEST(MemoryFile, WritesOnlyTouchedPages) {
  memory::GuestMemory mem = MakeMemory();
  ASSERT_TRUE(mem.WriteObj<uint64_t>(0x1000, 1).ok());
  ASSERT_TRUE(mem.WriteObj<uint64_t>(0x200000, 2).ok());
  ASSERT_TRUE(mem.WriteObj<uint64_t>(kMem - 8, 3).ok());
  test_support::TempDir dir;
  v1::MemoryLayout layout;

  absl::StatusOr<MemoryFileStats> stats = WriteMemoryFile(mem, dir.Join("memory"), &layout);

  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->data_bytes, 3 * kPage);
  EXPECT_EQ(layout.file_size(), kMem);
  struct stat st {};
  ASSERT_EQ(stat(dir.Join("memory").c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), kMem);
  // File systems may round allocations up; 3 pages must stay far below 1 MiB.
  EXPECT_LE(AllocatedBytes(dir.Join("memory")), 64 * kPage);
  EXPECT_GE(AllocatedBytes(dir.Join("memory")), 3 * kPage);
}

TEST(MemoryFile, SkipsPagesRewrittenToZero) {
  memory::GuestMemory mem = MakeMemory();
  ASSERT_TRUE(mem.WriteObj<uint64_t>(0x5000, 7).ok());
  ASSERT_TRUE(mem.WriteObj<uint64_t>(0x5000, 0).ok());  // Allocated in the memfd, but zero.
  test_support::TempDir dir;
  v1::MemoryLayout layout;

  absl::StatusOr<MemoryFileStats> stats = WriteMemoryFile(mem, dir.Join("memory"), &layout);

  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->scanned_bytes, kPage);
  EXPECT_EQ(stats->data_bytes, 0u);
}

TEST(MemoryFile, RestoredMappingHasTheSavedContents) {
  memory::GuestMemory mem = MakeMemory();
  ASSERT_TRUE(mem.WriteObj<uint64_t>(0x3008, 0xfeedface).ok());
  test_support::TempDir dir;
  v1::MemoryLayout layout;
  ASSERT_TRUE(WriteMemoryFile(mem, dir.Join("memory"), &layout).ok());

  absl::StatusOr<memory::GuestMemory> restored = MapMemoryFile(dir.path(), layout);

  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_TRUE(restored->is_private());
  EXPECT_EQ(*restored->ReadObj<uint64_t>(0x3008), 0xfeedfaceu);
  EXPECT_EQ(*restored->ReadObj<uint64_t>(0x4000), 0u);
}

TEST(MemoryFile, RestoredMappingIsCopyOnWrite) {
  memory::GuestMemory mem = MakeMemory();
  ASSERT_TRUE(mem.WriteObj<uint64_t>(0x3000, 0x1111).ok());
  test_support::TempDir dir;
  v1::MemoryLayout layout;
  ASSERT_TRUE(WriteMemoryFile(mem, dir.Join("memory"), &layout).ok());
  absl::StatusOr<memory::GuestMemory> clone_a = MapMemoryFile(dir.path(), layout);
  absl::StatusOr<memory::GuestMemory> clone_b = MapMemoryFile(dir.path(), layout);
  ASSERT_TRUE(clone_a.ok() && clone_b.ok());

  ASSERT_TRUE(clone_a->WriteObj<uint64_t>(0x3000, 0x2222).ok());

  EXPECT_EQ(*clone_a->ReadObj<uint64_t>(0x3000), 0x2222u);
  EXPECT_EQ(*clone_b->ReadObj<uint64_t>(0x3000), 0x1111u);
  uint64_t on_disk = 0;
  base::UniqueFd fd(open(dir.Join("memory").c_str(), O_RDONLY | O_CLOEXEC));
  ASSERT_EQ(pread(fd.get(), &on_disk, sizeof(on_disk), 0x3000), 8);
  EXPECT_EQ(on_disk, 0x1111u);
}

TEST(MemoryFile, SnapshotOfRestoredMemoryKeepsGuestWritesInFileHoles) {
  memory::GuestMemory mem = MakeMemory();
  ASSERT_TRUE(mem.WriteObj<uint64_t>(0x3000, 0x1111).ok());
  test_support::TempDir dir;
  v1::MemoryLayout layout;
  ASSERT_TRUE(WriteMemoryFile(mem, dir.Join("memory"), &layout).ok());
  absl::StatusOr<memory::GuestMemory> restored = MapMemoryFile(dir.path(), layout);
  ASSERT_TRUE(restored.ok());
  // 0x9000 is a hole in the file: only the private copy has it.
  ASSERT_TRUE(restored->WriteObj<uint64_t>(0x9000, 0x3333).ok());
  v1::MemoryLayout layout2;

  absl::StatusOr<MemoryFileStats> stats =
      WriteMemoryFile(*restored, dir.Join("memory2"), &layout2);

  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->data_bytes, 2 * kPage);
  absl::StatusOr<memory::GuestMemory> again = MapMemoryFile(dir.path(), layout2);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again->ReadObj<uint64_t>(0x3000), 0x1111u);
  EXPECT_EQ(*again->ReadObj<uint64_t>(0x9000), 0x3333u);
}

TEST(MemoryFile, RejectsTruncatedFile) {
  memory::GuestMemory mem = MakeMemory();
  test_support::TempDir dir;
  v1::MemoryLayout layout;
  ASSERT_TRUE(WriteMemoryFile(mem, dir.Join("memory"), &layout).ok());
  ASSERT_EQ(truncate(dir.Join("memory").c_str(), static_cast<off_t>(kMem / 2)), 0);

  absl::StatusOr<memory::GuestMemory> restored = MapMemoryFile(dir.path(), layout);

  EXPECT_EQ(restored.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_THAT(restored.status().message(), HasSubstr("truncated"));
}

TEST(MemoryFile, RejectsMissingFile) {
  test_support::TempDir dir;
  v1::MemoryLayout layout;
  layout.set_file_name("memory");
  layout.set_file_size(kMem);
  v1::MemoryRegion* r = layout.add_regions();
  r->set_size(kMem);

  absl::StatusOr<memory::GuestMemory> restored = MapMemoryFile(dir.path(), layout);

  EXPECT_EQ(restored.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace supermachine::snapshot
