// File: vsock_fuzz.cc
// Fuzzes the virtio-vsock device (worker/devices/virtio/vsock) the way a hostile guest and
// its host peers drive it: the input is a script of steps, each one byte of kind then its
// operands, run against a real Vsock (muxer, connections, Unix sockets in a temp dir) over a
// 1 MiB guest memory with rx/tx/event queues programmed as a driver would:
//   kTx        one tx packet: 44 raw header bytes (fields may be fixed up so they reach a
//              connection: our CIDs, stream type, the ports of the last rx packet), then a
//              descriptor layout (header split, payload descriptor length) and payload bytes;
//   kRawTx     a tx chain of arbitrary descriptors (addresses, lengths, flags from the input);
//   kRx        posts rx buffers of input-chosen sizes and layouts;
//   kHostConnect  a host client connects to the device's socket and sends a CONNECT line;
//   kPeer      a host peer (client or the listener behind a guest connect) writes, reads,
//              half-closes or closes;
//   kHostEvents   the VM loop's host-socket wakeup; kEventReset: a transport reset event.
// The ring mechanics themselves are fuzzed by virtio_queue_fuzz; this target goes after the
// packet handling behind them: bad headers, lengths, ops, credit values, unknown ports.
// Any crash, sanitizer report or hang is a bug.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#include "tests/unit/worker/virtq_builder.h"
#include "worker/base/unique_fd.h"
#include "worker/devices/virtio/vsock/vsock.h"
#include "worker/memory/guest_memory.h"

namespace {

using namespace supermachine;                         // NOLINT: a fuzz target's only scope.
using namespace supermachine::devices::virtio::vsock;  // NOLINT

constexpr uint64_t kMemSize = 1 << 20;
constexpr uint16_t kRxSize = 64, kTxSize = 16, kEventSize = 4;
constexpr uint64_t kRxBase = 0x00000, kTxBase = 0x10000, kEventBase = 0x20000;
constexpr uint64_t kEventData = 0x30000;
constexpr uint64_t kRxData = 0x40000;  // One 4 KiB slot per rx descriptor-chain head.
constexpr uint64_t kRxSlot = 0x1000;
constexpr uint64_t kTxData = 0x80000;  // Header here, payload at +0x100, up to the end.
constexpr uint32_t kGuestPort = 1024;  // A host listener sits behind "<path>_1024".
constexpr uint64_t kGuestCid = 3;
constexpr size_t kMaxPeers = 8;

enum Step : uint8_t { kTx, kRawTx, kRx, kHostConnect, kPeer, kHostEvents, kEventReset, kNumSteps };

// Reads operands off the input; past its end every read yields zeros.
class Input {
 public:
  Input(const uint8_t* data, size_t size) : p_(data), left_(size) {}
  bool empty() const { return left_ == 0; }
  uint8_t U8() {
    if (left_ == 0) {
      return 0;
    }
    --left_;
    return *p_++;
  }
  uint16_t U16() { return static_cast<uint16_t>(U8() | (U8() << 8)); }
  uint32_t U32() { return static_cast<uint32_t>(U16() | (static_cast<uint32_t>(U16()) << 16)); }
  // Up to `n` bytes (fewer at the end of the input).
  std::vector<uint8_t> Bytes(size_t n) {
    n = std::min(n, left_);
    std::vector<uint8_t> out(p_, p_ + n);
    p_ += n;
    left_ -= n;
    return out;
  }

 private:
  const uint8_t* p_;
  size_t left_;
};

// One directory for the process: the device's socket and the guest-port listener live here.
// Removed at exit, so corpus replays in CI leave nothing behind in /tmp.
class ScratchDir {
 public:
  ScratchDir() {
    char tmpl[] = "/tmp/sm-vsock-fuzz.XXXXXX";
    const char* d = mkdtemp(tmpl);
    path_ = d != nullptr ? d : "";
  }
  ~ScratchDir() {
    if (!path_.empty()) {
      std::error_code ec;
      std::filesystem::remove_all(path_, ec);
    }
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

const std::string& SocketDir() {
  static const ScratchDir dir;
  return dir.path();
}

base::UniqueFd Listen(const std::string& path) {
  unlink(path.c_str());
  base::UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), std::min(path.size(), sizeof(addr.sun_path) - 1));
  if (!fd.valid() || bind(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(fd.get(), 16) != 0) {
    return base::UniqueFd();
  }
  return fd;
}

base::UniqueFd Connect(const std::string& path) {
  base::UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.data(), std::min(path.size(), sizeof(addr.sun_path) - 1));
  if (!fd.valid() ||
      connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) != 0) {
    return base::UniqueFd();
  }
  return fd;
}

class Harness {
 public:
  Harness(memory::GuestMemory& mem, Vsock& dev, base::UniqueFd port_listener)
      : mem_(mem),
        dev_(dev),
        port_listener_(std::move(port_listener)),
        rx_(mem, kRxSize, kRxBase),
        tx_(mem, kTxSize, kTxBase),
        ev_(mem, kEventSize, kEventBase) {
    queues_ = {devices::virtio::Queue(Sized(rx_.State(), kRxSize)),
               devices::virtio::Queue(Sized(tx_.State(), kTxSize)),
               devices::virtio::Queue(Sized(ev_.State(), kEventSize))};
  }

  void Run(Input& in) {
    dev_.Activate(1);
    while (!in.empty()) {
      switch (static_cast<Step>(in.U8() % kNumSteps)) {
        case kTx: Tx(in); break;
        case kRawTx: RawTx(in); break;
        case kRx: Rx(in); break;
        case kHostConnect: HostConnect(in); break;
        case kPeer: Peer(in); break;
        case kHostEvents: (void)dev_.ProcessHostEvents(absl::MakeSpan(queues_), mem_); break;
        case kEventReset: EventReset(); break;
        case kNumSteps: break;
      }
      AcceptPeers();
      CollectRx();
    }
  }

 private:
  static devices::virtio::QueueState Sized(devices::virtio::QueueState s, uint16_t size) {
    s.max_size = size;
    s.size = size;
    return s;
  }

  void Notify(uint32_t queue) {
    (void)dev_.ProcessQueues(queue, absl::MakeSpan(queues_), mem_);
  }

  void Tx(Input& in) {
    uint8_t hdr[kHeaderSize] = {};
    const std::vector<uint8_t> raw = in.Bytes(kHeaderSize);
    std::copy(raw.begin(), raw.end(), hdr);
    Header h = DecodeHeader(hdr);
    const uint8_t fix = in.U8();
    if (fix & 1) {
      h.src_cid = kGuestCid;
      h.dst_cid = kHostCid;
    }
    if (fix & 2) {
      h.type = kTypeStream;
    }
    if (fix & 4) {  // Answer the last packet the device sent (e.g. a host-initiated REQUEST).
      h.src_port = last_rx_.dst_port;
      h.dst_port = last_rx_.src_port;
    } else if (fix & 8) {
      h.dst_port = kGuestPort;
    }
    if (fix & 16) {
      h.op = static_cast<uint16_t>(h.op % 8);
    }
    const uint16_t payload_desc_len = in.U16();
    if (fix & 32) {
      h.len = payload_desc_len;  // Consistent length (the common case for a real driver).
    }
    const std::vector<uint8_t> payload = in.Bytes(payload_desc_len);
    const auto bytes = EncodeHeader(h);
    (void)mem_.Write(kTxData, bytes);
    (void)mem_.Write(kTxData + 0x100, payload);
    std::vector<testing::DescSpec> descs;
    if (fix & 64) {  // Header split over two descriptors.
      const uint32_t cut = in.U8() % kHeaderSize;
      descs.push_back({kTxData, cut, false});
      descs.push_back({kTxData + cut, static_cast<uint32_t>(kHeaderSize - cut), false});
    } else {
      descs.push_back({kTxData, static_cast<uint32_t>(kHeaderSize), false});
    }
    if (payload_desc_len > 0) {
      descs.push_back({kTxData + 0x100, payload_desc_len, (fix & 128) != 0});
    }
    tx_.AddChain(descs);
    Notify(Vsock::kTxQueue);
  }

  void RawTx(Input& in) {
    const size_t n = in.U8() % 4 + 1;
    std::vector<testing::DescSpec> descs;
    for (size_t i = 0; i < n; ++i) {
      const uint8_t kind = in.U8();
      uint64_t addr = kTxData + (in.U16() & 0xfff);
      uint32_t len = in.U16();
      if (kind & 1) {
        addr = (static_cast<uint64_t>(in.U32()) << 32) | in.U32();
      }
      if (kind & 2) {
        len = in.U32();
      }
      descs.push_back({addr, len, (kind & 4) != 0});
    }
    tx_.AddChain(descs);
    Notify(Vsock::kTxQueue);
  }

  void Rx(Input& in) {
    const int n = in.U8() % 8 + 1;
    for (int i = 0; i < n; ++i) {
      // Two descriptors per chain; keep the outstanding ones within the ring.
      if (static_cast<uint16_t>(rx_posted_ - rx_.UsedIdx()) + 1 > kRxSize / 2) {
        break;
      }
      const uint8_t layout = in.U8();
      const uint32_t payload_len = static_cast<uint32_t>(in.U8()) * 16;
      const uint16_t head = NextRxHead();
      const uint64_t slot = kRxData + kRxSlot * head;
      switch (layout % 4) {
        case 0:  // Linux 6.1: header descriptor, payload descriptor.
          rx_.AddChain({{slot, kHeaderSize, true}, {slot + kHeaderSize, payload_len, true}});
          break;
        case 1:  // One descriptor for both.
          rx_.AddChain({{slot, static_cast<uint32_t>(kHeaderSize + payload_len), true},
                        {slot + 0xff0, 0, true}});
          break;
        case 2: {  // Header split at an input-chosen byte.
          const uint32_t cut = layout / 4 % kHeaderSize;
          rx_.AddChain({{slot, cut, true},
                        {slot + cut, static_cast<uint32_t>(kHeaderSize - cut + payload_len), true}});
          break;
        }
        default:  // Too small or read-only: unusable.
          rx_.AddChain({{slot, static_cast<uint32_t>(layout / 4 % kHeaderSize), (layout & 0x80) != 0},
                        {slot + kHeaderSize, payload_len, false}});
          break;
      }
      ++rx_posted_;
    }
    Notify(Vsock::kRxQueue);
  }

  // The builder hands out descriptors round-robin in pairs; the head is where it starts.
  uint16_t NextRxHead() {
    const uint16_t head = rx_next_desc_;
    rx_next_desc_ = static_cast<uint16_t>((rx_next_desc_ + 2) % kRxSize);
    return head;
  }

  void HostConnect(Input& in) {
    const uint8_t kind = in.U8();
    if (peers_.size() >= kMaxPeers) {
      return;
    }
    base::UniqueFd fd = Connect(SocketDir() + "/v.sock");
    if (!fd.valid()) {
      return;
    }
    std::string line;
    if (kind & 1) {
      const std::vector<uint8_t> raw = in.Bytes(kind >> 1);
      line.assign(raw.begin(), raw.end());
    } else {
      line = "CONNECT " + std::to_string(in.U16()) + "\n";
    }
    (void)send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    peers_.push_back(std::move(fd));
    (void)dev_.ProcessHostEvents(absl::MakeSpan(queues_), mem_);
  }

  void Peer(Input& in) {
    const uint8_t which = in.U8();
    const uint8_t action = in.U8();
    if (peers_.empty()) {
      return;
    }
    base::UniqueFd& fd = peers_[which % peers_.size()];
    if (!fd.valid()) {
      return;
    }
    switch (action % 4) {
      case 0: {
        const std::vector<uint8_t> data = in.Bytes(static_cast<size_t>(action) * 16);
        (void)send(fd.get(), data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        break;
      }
      case 1: {
        char buf[4096];
        while (recv(fd.get(), buf, sizeof(buf), MSG_DONTWAIT) > 0) {
        }
        break;
      }
      case 2:
        (void)shutdown(fd.get(), SHUT_WR);
        break;
      default:
        fd.Reset();
        break;
    }
    (void)dev_.ProcessHostEvents(absl::MakeSpan(queues_), mem_);
  }

  void EventReset() {
    ev_.AddChain({{kEventData, 4, true}});
    (void)dev_.ResetTransport(absl::MakeSpan(queues_), mem_);
  }

  // Host ends of guest-initiated connections become peers the script can drive.
  void AcceptPeers() {
    while (port_listener_.valid()) {
      base::UniqueFd fd(accept4(port_listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
      if (!fd.valid()) {
        return;
      }
      if (peers_.size() < kMaxPeers) {
        peers_.push_back(std::move(fd));
      }
    }
  }

  // Remembers the header of the newest packet the device gave the guest (for kTx's replies).
  void CollectRx() {
    const uint16_t used = rx_.UsedIdx();
    while (rx_seen_ != used) {
      const uint32_t head = rx_.UsedId(rx_seen_);
      const uint32_t len = rx_.UsedLen(rx_seen_);
      ++rx_seen_;
      if (len < kHeaderSize || head >= kRxSize) {
        continue;
      }
      uint8_t hdr[kHeaderSize];
      if (mem_.Read(kRxData + kRxSlot * head, absl::MakeSpan(hdr)).ok()) {
        last_rx_ = DecodeHeader(hdr);
      }
    }
  }

  memory::GuestMemory& mem_;
  Vsock& dev_;
  base::UniqueFd port_listener_;
  testing::VirtqBuilder rx_, tx_, ev_;
  std::vector<devices::virtio::Queue> queues_;
  std::vector<base::UniqueFd> peers_;
  Header last_rx_;
  uint16_t rx_posted_ = 0;
  uint16_t rx_seen_ = 0;
  uint16_t rx_next_desc_ = 0;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto mem = memory::GuestMemory::Create({{.guest_base = 0, .size = kMemSize}});
  if (!mem.ok()) {
    return 0;
  }
  const std::string path = SocketDir() + "/v.sock";
  auto dev = Vsock::Create({.uds_path = path, .guest_cid = kGuestCid});
  if (!dev.ok()) {
    return 0;
  }
  base::UniqueFd port_listener = Listen(path + "_" + std::to_string(kGuestPort));
  Input in(data, size);
  Harness harness(*mem, **dev, std::move(port_listener));
  harness.Run(in);
  return 0;
}
