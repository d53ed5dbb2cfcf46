// File: balloon_test.cc
// virtio-balloon: what it offers, that reported and ballooned pages really leave the host
// mapping (shared memfd and private RAM-file mappings), that malformed chains touch nothing,
// that a host target reaches the driver (config + config-change interrupt), and that its config
// survives the snapshot conversion.
#include "worker/devices/virtio/balloon.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstring>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "tests/unit/worker/fake_irq.h"
#include "tests/unit/worker/virtq_builder.h"
#include "worker/devices/virtio/mmio.h"
#include "worker/snapshot/device_state.h"

namespace supermachine::devices::virtio {
namespace {

using testing::CountingIrq;
using testing::DescSpec;
using testing::VirtqBuilder;

constexpr uint64_t kPage = 4096;
constexpr uint64_t kBuf = 0x100000;  // Test pages live from 1 MiB on, clear of the rings.

memory::GuestMemory SharedMem(uint64_t size) {
  auto m = memory::GuestMemory::Create({{.guest_base = 0, .size = size}});
  EXPECT_TRUE(m.ok()) << m.status();
  return *std::move(m);
}

void Fill(const memory::GuestMemory& mem, uint64_t addr, uint64_t len, uint8_t byte) {
  uint8_t* p = *mem.HostSlice(addr, len);
  std::memset(p, byte, len);
}

uint8_t At(const memory::GuestMemory& mem, uint64_t addr) {
  return *mem.ReadObj<uint8_t>(addr);
}

// Pops and processes what was published on the reporting queue.
void Report(Balloon& b, const memory::GuestMemory& mem, VirtqBuilder& vq,
            const std::vector<DescSpec>& ranges) {
  Queue q(vq.State());
  vq.AddChain(ranges);
  absl::StatusOr<bool> used = b.ProcessQueue(Balloon::kReportingQueue, q, mem);
  ASSERT_TRUE(used.ok()) << used.status();
  EXPECT_TRUE(*used);
  EXPECT_EQ(vq.UsedIdx(), 1) << "the chain must go back to the driver, which waits for it";
}

TEST(Balloon, OffersReportingWithoutPagePoisonAndThreeQueues) {
  memory::GuestMemory mem = SharedMem(1 << 20);
  CountingIrq irq;
  MmioTransport t(std::make_unique<Balloon>(), &mem, &irq);
  auto r = [&](uint64_t off) {
    uint32_t v = 0;
    t.Read(off, absl::Span<uint8_t>(reinterpret_cast<uint8_t*>(&v), 4));
    return v;
  };
  auto w = [&](uint64_t off, uint32_t v) {
    t.Write(off, absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(&v), 4));
  };
  EXPECT_EQ(r(reg::kDeviceId), kDeviceTypeBalloon);
  w(reg::kDeviceFeaturesSel, 0);
  const uint32_t low = r(reg::kDeviceFeatures);
  EXPECT_NE(low & kFeatureBalloonReporting, 0u);
  EXPECT_EQ(low & kFeatureBalloonPagePoison, 0u) << "poisoned pages would be handed back wrong";
  EXPECT_EQ(low & kFeatureBalloonStatsVq, 0u) << "a stats queue would renumber reporting";
  EXPECT_NE(low & kFeatureBalloonDeflateOnOom, 0u)
      << "an inflated guest that becomes busy must deflate by itself, not OOM";
  EXPECT_EQ(t.num_queues(), 3u);
  w(reg::kQueueSel, Balloon::kReportingQueue);
  EXPECT_GE(r(reg::kQueueNumMax), 32u) << "Linux needs PAGE_REPORTING_CAPACITY entries";

  // A driver claiming PAGE_POISON anyway does not get FEATURES_OK.
  w(reg::kStatus, status::kAcknowledge);
  w(reg::kStatus, status::kAcknowledge | status::kDriver);
  w(reg::kDriverFeaturesSel, 0);
  w(reg::kDriverFeatures, static_cast<uint32_t>(kFeatureBalloonReporting |
                                                kFeatureBalloonPagePoison));
  w(reg::kDriverFeaturesSel, 1);
  w(reg::kDriverFeatures, 1);
  w(reg::kStatus, status::kAcknowledge | status::kDriver | status::kFeaturesOk);
  EXPECT_EQ(r(reg::kStatus) & status::kFeaturesOk, 0u);
}

TEST(Balloon, ConfigHasTargetAndDriverWritableActual) {
  Balloon b;
  b.RestoreConfig(/*num_pages=*/77, /*actual=*/5);
  uint32_t v = 0;
  b.ReadConfig(0, absl::Span<uint8_t>(reinterpret_cast<uint8_t*>(&v), 4));
  EXPECT_EQ(v, 77u);
  const uint32_t actual = 12;
  b.WriteConfig(4, absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(&actual), 4));
  b.WriteConfig(0, absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(&actual), 4));
  b.ReadConfig(4, absl::Span<uint8_t>(reinterpret_cast<uint8_t*>(&v), 4));
  EXPECT_EQ(v, 12u);
  EXPECT_EQ(b.state().num_pages, 77u) << "num_pages is the host's, not the driver's";
  uint8_t past[8];
  b.ReadConfig(14, absl::Span<uint8_t>(past, sizeof(past)));
  EXPECT_EQ(past[7], 0);
}

TEST(Balloon, ReportedRangeIsFreedFromTheSharedMemfd) {
  memory::GuestMemory mem = SharedMem(8 << 20);
  VirtqBuilder vq(mem, 128);
  Balloon b;
  Fill(mem, kBuf, 4 * kPage, 0xaa);
  Report(b, mem, vq, {{.addr = kBuf + kPage, .len = 2 * kPage, .write = true}});
  // The hole is real: the memfd holds no page there any more (checked before reading the
  // range, which allocates a zero page again).
  EXPECT_EQ(lseek(mem.fd(), static_cast<off_t>(kBuf), SEEK_HOLE),
            static_cast<off_t>(kBuf + kPage));
  EXPECT_EQ(lseek(mem.fd(), static_cast<off_t>(kBuf + kPage), SEEK_DATA),
            static_cast<off_t>(kBuf + 3 * kPage));
  EXPECT_EQ(At(mem, kBuf), 0xaa) << "the page before the range is not the guest's to lose";
  EXPECT_EQ(At(mem, kBuf + kPage), 0);
  EXPECT_EQ(At(mem, kBuf + 3 * kPage - 1), 0);
  EXPECT_EQ(At(mem, kBuf + 3 * kPage), 0xaa);
  EXPECT_EQ(b.state().reported_ranges, 1u);
  EXPECT_EQ(b.state().reported_bytes, 2 * kPage);
}

TEST(Balloon, ReportedRangeOfARestoredVmRevertsToTheRamFile) {
  char dir_template[] = "/tmp/balloon_test_XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::string path = std::string(dir_template) + "/memory";
  {
    std::ofstream f(path, std::ios::binary);
    std::string content(4 << 20, '\x11');
    f.write(content.data(), static_cast<std::streamsize>(content.size()));
  }
  auto m = memory::GuestMemory::CreatePrivateFromFile(
      path, {{.guest_base = 0, .size = 4 << 20, .file_offset = 0}});
  ASSERT_TRUE(m.ok()) << m.status();
  VirtqBuilder vq(*m, 128);
  Balloon b;
  Fill(*m, kBuf, 2 * kPage, 0x22);  // The guest's private copies.
  Report(b, *m, vq, {{.addr = kBuf, .len = kPage, .write = true}});
  EXPECT_EQ(At(*m, kBuf), 0x11) << "the private copy must be dropped";
  EXPECT_EQ(At(*m, kBuf + kPage), 0x22);
  unlink(path.c_str());
  rmdir(dir_template);
}

TEST(Balloon, ReportBiggerThanTheGenericChainBoundIsAccepted) {
  // Linux 6.1 reports up to 32 ranges of 4 MiB (order 10) at once: 128 MiB, past
  // Queue::kMaxChainBytes. Untouched NORESERVE memory costs nothing.
  memory::GuestMemory mem = SharedMem(160ull << 20);
  VirtqBuilder vq(mem, 128);
  Balloon b;
  std::vector<DescSpec> ranges;
  for (uint64_t i = 0; i < 32; ++i) {
    ranges.push_back({.addr = (16ull << 20) + i * (4ull << 20), .len = 4u << 20, .write = true});
  }
  const uint64_t last = (16ull << 20) + 31 * (4ull << 20);
  Fill(mem, last, kPage, 0x33);
  Report(b, mem, vq, ranges);
  EXPECT_EQ(b.state().rejected_chains, 0u);
  EXPECT_EQ(b.state().reported_bytes, 128ull << 20);
  EXPECT_EQ(At(mem, last), 0);
}

TEST(Balloon, MalformedReportsTouchNothing) {
  memory::GuestMemory mem = SharedMem(4 << 20);
  Balloon b;
  const std::vector<std::vector<DescSpec>> bad = {
      {{.addr = kBuf + 1, .len = kPage, .write = true}},   // Unaligned start.
      {{.addr = kBuf, .len = kPage + 1, .write = true}},   // Unaligned length.
      {{.addr = kBuf, .len = 0, .write = true}},           // Empty.
      {{.addr = (4 << 20) - kPage, .len = 2 * kPage, .write = true}},  // Past the end of RAM.
      {{.addr = 1ull << 40, .len = kPage, .write = true}},             // Nowhere.
      // Good then bad: the good range must not be dropped either.
      {{.addr = kBuf, .len = kPage, .write = true},
       {.addr = kBuf + 7, .len = kPage, .write = true}},
      // Ranges adding up to more than all of RAM.
      {{.addr = kBuf, .len = 3 << 20, .write = true},
       {.addr = kBuf, .len = 3 << 20, .write = true}},
  };
  uint64_t rejected = 0;
  for (const auto& chain : bad) {
    VirtqBuilder vq(mem, 128);
    Fill(mem, kBuf, 3 << 20, 0x5c);
    Report(b, mem, vq, chain);
    ++rejected;
    EXPECT_EQ(b.state().rejected_chains, rejected);
    EXPECT_EQ(At(mem, kBuf), 0x5c);
    EXPECT_EQ(At(mem, kBuf + kPage), 0x5c);
  }
  EXPECT_EQ(b.state().reported_bytes, 0u);
}

TEST(Balloon, InflateDropsListedPagesAndRefusesBadPfns) {
  memory::GuestMemory mem = SharedMem(4 << 20);
  VirtqBuilder vq(mem, 64);
  Balloon b;
  Fill(mem, kBuf, 4 * kPage, 0x66);
  // PFNs 0x100, 0x101 (a run) and 0x103; 0x102 stays.
  const std::vector<uint32_t> pfns = {0x100, 0x101, 0x103};
  ASSERT_TRUE(mem.Write(VirtqBuilder::kData,
                        absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(pfns.data()),
                                                  pfns.size() * 4))
                  .ok());
  Queue q(vq.State());
  vq.AddChain({{.addr = VirtqBuilder::kData, .len = 12}});
  ASSERT_TRUE(b.ProcessQueue(Balloon::kInflateQueue, q, mem).ok());
  EXPECT_EQ(At(mem, kBuf), 0);
  EXPECT_EQ(At(mem, kBuf + kPage), 0);
  EXPECT_EQ(At(mem, kBuf + 2 * kPage), 0x66);
  EXPECT_EQ(At(mem, kBuf + 3 * kPage), 0);
  EXPECT_EQ(b.state().inflated_pages, 3u);

  // One PFN outside RAM spoils the request: the good one before it stays.
  Fill(mem, kBuf, kPage, 0x67);
  const std::vector<uint32_t> mixed = {0x100, 0xfffff};
  ASSERT_TRUE(mem.Write(VirtqBuilder::kData,
                        absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(mixed.data()),
                                                  mixed.size() * 4))
                  .ok());
  vq.AddChain({{.addr = VirtqBuilder::kData, .len = 8}});
  ASSERT_TRUE(b.ProcessQueue(Balloon::kInflateQueue, q, mem).ok());
  EXPECT_EQ(At(mem, kBuf), 0x67);
  EXPECT_EQ(b.state().rejected_chains, 1u);

  // A PFN array bigger than Linux ever sends is refused, not read.
  vq.AddChain({{.addr = VirtqBuilder::kData, .len = 4 * (Balloon::kMaxPfnsPerRequest + 1)}});
  ASSERT_TRUE(b.ProcessQueue(Balloon::kInflateQueue, q, mem).ok());
  EXPECT_EQ(b.state().rejected_chains, 2u);
  EXPECT_EQ(vq.UsedIdx(), 3);
}

TEST(Balloon, DeflateOnlyCounts) {
  memory::GuestMemory mem = SharedMem(4 << 20);
  VirtqBuilder vq(mem, 64);
  Balloon b;
  Fill(mem, kBuf, kPage, 0x44);
  const uint32_t pfn = 0x100;
  ASSERT_TRUE(mem.WriteObj<uint32_t>(VirtqBuilder::kData, pfn).ok());
  Queue q(vq.State());
  vq.AddChain({{.addr = VirtqBuilder::kData, .len = 4}});
  ASSERT_TRUE(b.ProcessQueue(Balloon::kDeflateQueue, q, mem).ok());
  EXPECT_EQ(b.state().deflated_pages, 1u);
  EXPECT_EQ(At(mem, kBuf), 0x44);
}

TEST(Balloon, ConfigSurvivesTheSnapshotConversion) {
  Balloon b;
  b.RestoreConfig(1000, 640);
  const auto proto = snapshot::BalloonToProto(b.state());
  const BalloonState back = snapshot::BalloonFromProto(proto);
  EXPECT_EQ(back.num_pages, 1000u);
  EXPECT_EQ(back.actual, 640u);
  // A whole transport with a negotiated balloon restores into a fresh one.
  memory::GuestMemory mem = SharedMem(1 << 20);
  CountingIrq irq;
  MmioTransport t(std::make_unique<Balloon>(), &mem, &irq);
  MmioState s = t.SaveState();
  s.device_status = status::kAcknowledge | status::kDriver | status::kFeaturesOk |
                    status::kDriverOk;
  s.acked_features = kFeatureVersion1 | kFeatureBalloonReporting;
  const auto tp = snapshot::TransportToProto(s, kDeviceTypeBalloon, Balloon().features());
  auto restored = snapshot::TransportFromProto(tp, kDeviceTypeBalloon, Balloon().features(), 3);
  ASSERT_TRUE(restored.ok()) << restored.status();
  MmioTransport t2(std::make_unique<Balloon>(), &mem, &irq);
  ASSERT_TRUE(t2.RestoreState(*restored).ok());
  EXPECT_EQ(static_cast<Balloon&>(t2.device()).state().acked_features,
            kFeatureVersion1 | kFeatureBalloonReporting);
}

// Register access to a transport, as a driver does it.
struct Driver {
  MmioTransport& t;
  uint32_t Read(uint64_t off) {
    uint32_t v = 0;
    t.Read(off, absl::Span<uint8_t>(reinterpret_cast<uint8_t*>(&v), 4));
    return v;
  }
  void Write(uint64_t off, uint32_t v) {
    t.Write(off, absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(&v), 4));
  }
  // Negotiates `features` and sets DRIVER_OK (queues are not needed for config changes).
  void Start(uint64_t features) {
    Write(reg::kStatus, status::kAcknowledge);
    Write(reg::kStatus, status::kAcknowledge | status::kDriver);
    Write(reg::kDriverFeaturesSel, 0);
    Write(reg::kDriverFeatures, static_cast<uint32_t>(features));
    Write(reg::kDriverFeaturesSel, 1);
    Write(reg::kDriverFeatures, static_cast<uint32_t>(features >> 32));
    Write(reg::kStatus, status::kAcknowledge | status::kDriver | status::kFeaturesOk);
    Write(reg::kStatus,
          status::kAcknowledge | status::kDriver | status::kFeaturesOk | status::kDriverOk);
  }
};

TEST(Balloon, TargetReachesTheRunningDriverWithAConfigChangeInterrupt) {
  memory::GuestMemory mem = SharedMem(8 << 20);  // 2048 pages.
  CountingIrq irq;
  MmioTransport t(std::make_unique<Balloon>(), &mem, &irq);
  Driver d{t};
  d.Start(kFeatureVersion1 | kFeatureBalloonReporting | kFeatureBalloonDeflateOnOom);
  ASSERT_NE(d.Read(reg::kStatus) & status::kDriverOk, 0u);
  const uint32_t generation = d.Read(reg::kConfigGeneration);

  ASSERT_TRUE(SetBalloonTarget(t, 1434).ok());
  EXPECT_EQ(d.Read(reg::kConfig), 1434u) << "num_pages is the first config field";
  EXPECT_NE(d.Read(reg::kInterruptStatus) & kInterruptConfigChange, 0u);
  EXPECT_EQ(d.Read(reg::kInterruptStatus) & kInterruptUsedBuffer, 0u);
  EXPECT_EQ(irq.count, 1);
  EXPECT_NE(d.Read(reg::kConfigGeneration), generation);

  // The driver acknowledges; deflating fully is target 0, signalled again.
  d.Write(reg::kInterruptAck, kInterruptConfigChange);
  ASSERT_TRUE(SetBalloonTarget(t, 0).ok());
  EXPECT_EQ(d.Read(reg::kConfig), 0u);
  EXPECT_NE(d.Read(reg::kInterruptStatus) & kInterruptConfigChange, 0u);
  EXPECT_EQ(irq.count, 2);

  // All of RAM is the limit; one page more is refused and changes nothing.
  ASSERT_TRUE(SetBalloonTarget(t, 2048).ok());
  d.Write(reg::kInterruptAck, kInterruptConfigChange);
  absl::Status too_big = SetBalloonTarget(t, 2049);
  EXPECT_EQ(too_big.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(too_big.message().find("8 MiB"), std::string::npos) << too_big;
  EXPECT_EQ(d.Read(reg::kConfig), 2048u);
  EXPECT_EQ(d.Read(reg::kInterruptStatus), 0u);
  EXPECT_EQ(irq.count, 3);
}

TEST(Balloon, TargetBeforeTheDriverRunsIsReadWithoutAnInterrupt) {
  memory::GuestMemory mem = SharedMem(4 << 20);
  CountingIrq irq;
  MmioTransport t(std::make_unique<Balloon>(), &mem, &irq);
  Driver d{t};
  ASSERT_TRUE(SetBalloonTarget(t, 100).ok());
  EXPECT_EQ(irq.count, 0) << "no driver has an interrupt handler yet";
  EXPECT_EQ(d.Read(reg::kInterruptStatus), 0u);
  d.Start(kFeatureVersion1 | kFeatureBalloonReporting);
  EXPECT_EQ(d.Read(reg::kConfig), 100u) << "the driver reads the target when it starts";
  // A driver reset keeps the host's target (only the driver's `actual` is per session).
  d.Write(reg::kStatus, 0);
  EXPECT_EQ(d.Read(reg::kConfig), 100u);
}

TEST(Balloon, SetBalloonTargetRefusesAnotherDevice) {
  // Guards the static_cast: a transport in front of something else is an error, not UB.
  class NotBalloon : public Balloon {
   public:
    uint32_t device_type() const override { return 4; }
  };
  memory::GuestMemory mem = SharedMem(1 << 20);
  CountingIrq irq;
  MmioTransport t(std::make_unique<NotBalloon>(), &mem, &irq);
  EXPECT_EQ(SetBalloonTarget(t, 1).code(), absl::StatusCode::kFailedPrecondition);
}

TEST(Balloon, TargetSetBeforeASnapshotRestoresAsSet) {
  memory::GuestMemory mem = SharedMem(4 << 20);
  CountingIrq irq;
  MmioTransport t(std::make_unique<Balloon>(), &mem, &irq);
  Driver d{t};
  d.Start(kFeatureVersion1 | kFeatureBalloonReporting | kFeatureBalloonDeflateOnOom);
  ASSERT_TRUE(SetBalloonTarget(t, 700).ok());
  const uint32_t actual = 300;  // The driver is on its way there.
  t.Write(reg::kConfig + 4,
          absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(&actual), 4));

  // Save as Vm::Snapshot does: transport and device config.
  const auto& saved = static_cast<Balloon&>(t.device()).state();
  const auto config = snapshot::BalloonToProto(saved);
  const auto tp = snapshot::TransportToProto(t.SaveState(), kDeviceTypeBalloon,
                                             Balloon().features());

  // Restore as Vm::BuildFromSnapshot does, into a fresh transport.
  MmioTransport t2(std::make_unique<Balloon>(), &mem, &irq);
  auto want = snapshot::TransportFromProto(tp, kDeviceTypeBalloon, Balloon().features(), 3);
  ASSERT_TRUE(want.ok()) << want.status();
  ASSERT_TRUE(t2.RestoreState(*want).ok());
  const BalloonState b = snapshot::BalloonFromProto(config);
  static_cast<Balloon&>(t2.device()).RestoreConfig(b.num_pages, b.actual);
  Driver d2{t2};
  EXPECT_EQ(d2.Read(reg::kConfig), 700u);
  EXPECT_EQ(d2.Read(reg::kConfig + 4), 300u);
  EXPECT_EQ(static_cast<Balloon&>(t2.device()).state().acked_features &
                kFeatureBalloonDeflateOnOom,
            kFeatureBalloonDeflateOnOom);
  // The config-change bit the driver had not acknowledged is pending again in the new VM.
  EXPECT_NE(d2.Read(reg::kInterruptStatus) & kInterruptConfigChange, 0u);
}

TEST(Balloon, SnapshotWhoseDriverDidNotAckDeflateOnOomStillRestores) {
  // Snapshots baked before DEFLATE_ON_OOM was offered: offered then = VERSION_1 | REPORTING.
  memory::GuestMemory mem = SharedMem(1 << 20);
  CountingIrq irq;
  MmioState s = MmioTransport(std::make_unique<Balloon>(), &mem, &irq).SaveState();
  s.device_status = status::kAcknowledge | status::kDriver | status::kFeaturesOk |
                    status::kDriverOk;
  s.acked_features = kFeatureVersion1 | kFeatureBalloonReporting;
  const auto old = snapshot::TransportToProto(s, kDeviceTypeBalloon,
                                              kFeatureVersion1 | kFeatureBalloonReporting);
  auto want = snapshot::TransportFromProto(old, kDeviceTypeBalloon, Balloon().features(), 3);
  ASSERT_TRUE(want.ok()) << want.status();
  MmioTransport t(std::make_unique<Balloon>(), &mem, &irq);
  ASSERT_TRUE(t.RestoreState(*want).ok());
  EXPECT_EQ(static_cast<Balloon&>(t.device()).state().acked_features,
            kFeatureVersion1 | kFeatureBalloonReporting);
  // Its driver still takes a target.
  ASSERT_TRUE(SetBalloonTarget(t, 10).ok());
  EXPECT_EQ(Driver{t}.Read(reg::kConfig), 10u);
}

}  // namespace
}  // namespace supermachine::devices::virtio
