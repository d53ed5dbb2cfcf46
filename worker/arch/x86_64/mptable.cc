// File: mptable.cc
// MP table construction (layouts from Linux arch/x86/include/asm/mpspec_def.h).
#include "worker/arch/x86_64/mptable.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "worker/arch/x86_64/layout.h"

namespace supermachine::arch {
namespace {

#pragma pack(push, 1)
struct MpfIntel {
  char signature[4];  // "_MP_"
  uint32_t physptr;   // Address of the configuration table.
  uint8_t length;     // In 16-byte paragraphs: 1.
  uint8_t specification;
  uint8_t checksum;
  uint8_t feature1;
  uint8_t feature2;
  uint8_t feature3;
  uint8_t feature4;
  uint8_t feature5;
};
struct MpcTable {
  char signature[4];  // "PCMP"
  uint16_t length;
  uint8_t spec;
  uint8_t checksum;
  char oem[8];
  char productid[12];
  uint32_t oemptr;
  uint16_t oemsize;
  uint16_t oemcount;
  uint32_t lapic;
  uint32_t reserved;
};
struct MpcCpu {
  uint8_t type;
  uint8_t apicid;
  uint8_t apicver;
  uint8_t cpuflag;
  uint32_t cpufeature;
  uint32_t featureflag;
  uint32_t reserved[2];
};
struct MpcBus {
  uint8_t type;
  uint8_t busid;
  char bustype[6];
};
struct MpcIoapic {
  uint8_t type;
  uint8_t apicid;
  uint8_t apicver;
  uint8_t flags;
  uint32_t apicaddr;
};
struct MpcIntsrc {
  uint8_t type;
  uint8_t irqtype;
  uint16_t irqflag;
  uint8_t srcbus;
  uint8_t srcbusirq;
  uint8_t dstapic;
  uint8_t dstirq;
};
#pragma pack(pop)
static_assert(sizeof(MpfIntel) == 16);
static_assert(sizeof(MpcTable) == 44);
static_assert(sizeof(MpcCpu) == 20);
static_assert(sizeof(MpcBus) == 8);
static_assert(sizeof(MpcIoapic) == 8);
static_assert(sizeof(MpcIntsrc) == 8);

constexpr uint8_t kMpProcessor = 0;
constexpr uint8_t kMpBus = 1;
constexpr uint8_t kMpIoapic = 2;
constexpr uint8_t kMpIntsrc = 3;
constexpr uint8_t kMpLintsrc = 4;
constexpr uint8_t kMpIrqInt = 0;
constexpr uint8_t kMpIrqNmi = 1;
constexpr uint8_t kMpIrqExtInt = 3;
constexpr uint8_t kCpuEnabled = 1;
constexpr uint8_t kCpuBootProcessor = 2;
constexpr uint8_t kApicVersion = 0x14;
constexpr uint8_t kIoapicVersion = 0x11;
constexpr uint32_t kCpuStepping = 0x600;
constexpr uint32_t kCpuFeatureApic = 0x200;
constexpr uint32_t kCpuFeatureFpu = 0x1;

uint8_t Checksum(const uint8_t* data, size_t len) {
  uint8_t sum = 0;
  for (size_t i = 0; i < len; ++i) {
    sum = static_cast<uint8_t>(sum + data[i]);
  }
  return static_cast<uint8_t>(-sum);
}

template <typename T>
void Append(std::vector<uint8_t>* out, const T& v) {
  const auto* p = reinterpret_cast<const uint8_t*>(&v);
  out->insert(out->end(), p, p + sizeof(T));
}

}  // namespace

absl::StatusOr<std::vector<uint8_t>> BuildMpTable(uint32_t vcpu_count) {
  if (vcpu_count == 0 || vcpu_count > kMaxVcpus) {
    return absl::InvalidArgumentError(
        absl::StrCat("MP table: ", vcpu_count, " vCPUs; supported: 1..", kMaxVcpus));
  }
  // The IOAPIC takes the APIC id after the last CPU.
  const uint8_t ioapic_id = static_cast<uint8_t>(vcpu_count);

  std::vector<uint8_t> entries;
  for (uint32_t i = 0; i < vcpu_count; ++i) {
    MpcCpu cpu{};
    cpu.type = kMpProcessor;
    cpu.apicid = static_cast<uint8_t>(i);
    cpu.apicver = kApicVersion;
    cpu.cpuflag = kCpuEnabled | (i == 0 ? kCpuBootProcessor : 0);
    cpu.cpufeature = kCpuStepping;
    cpu.featureflag = kCpuFeatureApic | kCpuFeatureFpu;
    Append(&entries, cpu);
  }
  MpcBus bus{};
  bus.type = kMpBus;
  bus.busid = 0;
  std::memcpy(bus.bustype, "ISA   ", 6);
  Append(&entries, bus);
  MpcIoapic ioapic{};
  ioapic.type = kMpIoapic;
  ioapic.apicid = ioapic_id;
  ioapic.apicver = kIoapicVersion;
  ioapic.flags = 1;  // MPC_APIC_USABLE
  ioapic.apicaddr = static_cast<uint32_t>(kIoapicAddr);
  Append(&entries, ioapic);
  // Every IOAPIC pin wired 1:1 to the ISA IRQ of the same number, default (edge, active-high)
  // polarity: the serial port and virtio-mmio devices then use their IRQ number as GSI.
  for (uint32_t irq = 0; irq < kIoapicPins; ++irq) {
    MpcIntsrc src{};
    src.type = kMpIntsrc;
    src.irqtype = kMpIrqInt;
    src.irqflag = 0;
    src.srcbus = 0;
    src.srcbusirq = static_cast<uint8_t>(irq);
    src.dstapic = ioapic_id;
    src.dstirq = static_cast<uint8_t>(irq);
    Append(&entries, src);
  }
  // LINT0 of every local APIC takes ExtINT (the 8259), LINT1 takes NMI — matching the LAPIC
  // LVT setup in vmm/vcpu.cc.
  MpcIntsrc lint0{};
  lint0.type = kMpLintsrc;
  lint0.irqtype = kMpIrqExtInt;
  lint0.dstapic = 0;
  lint0.dstirq = 0;
  Append(&entries, lint0);
  MpcIntsrc lint1{};
  lint1.type = kMpLintsrc;
  lint1.irqtype = kMpIrqNmi;
  lint1.dstapic = 0xff;  // All local APICs.
  lint1.dstirq = 1;
  Append(&entries, lint1);

  MpcTable table{};
  std::memcpy(table.signature, "PCMP", 4);
  table.length = static_cast<uint16_t>(sizeof(MpcTable) + entries.size());
  table.spec = 4;
  std::memcpy(table.oem, "SUPERMCH", 8);
  std::memcpy(table.productid, "000000000000", 12);
  table.lapic = static_cast<uint32_t>(kLapicAddr);

  std::vector<uint8_t> config;
  Append(&config, table);
  config.insert(config.end(), entries.begin(), entries.end());
  config[offsetof(MpcTable, checksum)] = Checksum(config.data(), config.size());

  MpfIntel mpf{};
  std::memcpy(mpf.signature, "_MP_", 4);
  mpf.physptr = static_cast<uint32_t>(kMpTableAddr + sizeof(MpfIntel));
  mpf.length = 1;
  mpf.specification = 4;
  std::vector<uint8_t> out;
  Append(&out, mpf);
  out[offsetof(MpfIntel, checksum)] = Checksum(out.data(), out.size());
  out.insert(out.end(), config.begin(), config.end());
  // It must fit in the reserved KiB between kEbdaStart and 640 KiB (924 bytes for 32 CPUs).
  if (kMpTableAddr + out.size() > 0xa0000) {
    return absl::InvalidArgumentError("MP table does not fit below 640 KiB");
  }
  return out;
}

absl::Status WriteMpTable(const memory::GuestMemory& mem, uint32_t vcpu_count) {
  absl::StatusOr<std::vector<uint8_t>> bytes = BuildMpTable(vcpu_count);
  if (!bytes.ok()) {
    return bytes.status();
  }
  return mem.Write(kMpTableAddr, *bytes);
}

}  // namespace supermachine::arch
