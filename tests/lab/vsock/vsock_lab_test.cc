// File: vsock_lab_test.cc
// Boots our kernel under supermachine-worker with --vsock and a static init
// (guest/vsock_init.cc: echo server on vsock port 5000, connects to host port 6000), inside
// the KVM lab (tests/lab/run), and checks hybrid vsock end to end from the host: the
// CONNECT/OK handshake, 32 MiB echoed intact, 20 concurrent connections, a guest-initiated
// connection landing on "<path>_6000", and a CONNECT to a port nobody listens on failing
// promptly. One VM serves every test (each L2 boot costs seconds of emulation).
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/lab/vsock/pattern.h"
#include "tests/lab/support/kernel_dir.h"
#include "worker/base/child_process.h"
#include "worker/base/unique_fd.h"

namespace {

namespace fs = std::filesystem;
using supermachine::base::ChildProcess;
using supermachine::base::UniqueFd;
using supermachine::lab::FillPattern;
using supermachine::lab::PatternByte;
using ::testing::HasSubstr;

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string KernelDir() {
  static const std::string dir = supermachine::lab::KernelDir(SM_SOURCE_DIR);
  return dir;
}

uint64_t Fnv1a(const uint8_t* p, size_t n, uint64_t h) {
  for (size_t i = 0; i < n; ++i) {
    h = (h ^ p[i]) * 0x100000001b3ull;
  }
  return h;
}
constexpr uint64_t kFnvBasis = 0xcbf29ce484222325ull;
constexpr size_t kChunk = size_t{64} << 10;

void SetTimeouts(int fd, int seconds) {
  timeval tv{.tv_sec = seconds, .tv_usec = 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

UniqueFd UnixConnect(const std::string& path) {
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  if (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return UniqueFd();
  }
  return fd;
}

bool WriteAll(int fd, const uint8_t* p, size_t n) {
  while (n > 0) {
    const ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w <= 0) {
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

struct Handshake {
  UniqueFd fd;        // Valid after "OK".
  std::string reply;  // The line we got ("" on EOF).
};

// Hybrid vsock handshake: "CONNECT <port>\n" → "OK <hostport>\n". The reply is read byte by
// byte so no stream data after it is consumed.
Handshake ConnectGuest(const std::string& uds, uint32_t port) {
  Handshake h;
  UniqueFd fd = UnixConnect(uds);
  if (!fd.valid()) {
    h.reply = absl::StrCat("connect: ", strerror(errno));
    return h;
  }
  SetTimeouts(fd.get(), 60);
  const std::string line = absl::StrCat("CONNECT ", port, "\n");
  if (!WriteAll(fd.get(), reinterpret_cast<const uint8_t*>(line.data()), line.size())) {
    return h;
  }
  char c;
  while (h.reply.size() < 64) {
    const ssize_t n = read(fd.get(), &c, 1);
    if (n <= 0 || c == '\n') {
      break;
    }
    h.reply.push_back(c);
  }
  if (h.reply.rfind("OK ", 0) == 0) {
    h.fd = std::move(fd);
  }
  return h;
}

// Sends `bytes` of pattern `seed` and checks the echo byte for byte; "" when intact.
std::string EchoCheck(int fd, uint64_t seed, size_t bytes, uint64_t* hash_sent = nullptr,
                      uint64_t* hash_got = nullptr) {
  std::atomic<bool> write_ok{true};
  uint64_t sent_hash = kFnvBasis;
  std::thread writer([&] {
    std::vector<uint8_t> buf(kChunk);
    for (size_t off = 0; off < bytes; off += buf.size()) {
      const size_t n = std::min(buf.size(), bytes - off);
      FillPattern(buf.data(), n, seed, off);
      sent_hash = Fnv1a(buf.data(), n, sent_hash);
      if (!WriteAll(fd, buf.data(), n)) {
        write_ok = false;
        return;
      }
    }
  });
  std::vector<uint8_t> buf(kChunk);
  size_t got = 0;
  uint64_t got_hash = kFnvBasis;
  std::string error;
  while (got < bytes) {
    const ssize_t n = read(fd, buf.data(), std::min(buf.size(), bytes - got));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      error = absl::StrCat("echo ended after ", got, " of ", bytes, " bytes: ",
                           n == 0 ? "EOF" : strerror(errno));
      break;
    }
    for (ssize_t i = 0; i < n && error.empty(); ++i) {
      if (buf[static_cast<size_t>(i)] != PatternByte(seed, got + static_cast<size_t>(i))) {
        error = absl::StrCat("echo differs at byte ", got + static_cast<size_t>(i));
      }
    }
    got_hash = Fnv1a(buf.data(), static_cast<size_t>(n), got_hash);
    got += static_cast<size_t>(n);
    if (!error.empty()) {
      break;
    }
  }
  if (!error.empty()) {
    shutdown(fd, SHUT_RDWR);  // Unblocks the writer.
  }
  writer.join();
  if (error.empty() && !write_ok) {
    error = "write failed";
  }
  if (hash_sent != nullptr) {
    *hash_sent = sent_hash;
  }
  if (hash_got != nullptr) {
    *hash_got = got_hash;
  }
  return error;
}

// The host end of the guest-initiated connection: accepts on "<path>_6000", reads to EOF,
// echoes everything back, closes.
class HostListener {
 public:
  explicit HostListener(const std::string& path)
      : path_(path), fd_(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
    ok_ = bind(fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
          listen(fd_.get(), 4) == 0;
    if (ok_) {
      thread_ = std::thread([this] { Serve(); });
    }
  }
  ~HostListener() {
    shutdown(fd_.get(), SHUT_RDWR);
    if (thread_.joinable()) {
      thread_.join();
    }
    unlink(path_.c_str());
  }
  bool ok() const { return ok_; }
  // The bytes received once the guest half-closed, or nullopt before that.
  std::optional<std::vector<uint8_t>> received() {
    std::lock_guard lock(mu_);
    return received_;
  }

 private:
  void Serve() {
    UniqueFd c(accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (!c.valid()) {
      return;
    }
    SetTimeouts(c.get(), 120);
    std::vector<uint8_t> data;
    std::vector<uint8_t> buf(kChunk);
    while (true) {
      const ssize_t n = read(c.get(), buf.data(), buf.size());
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        break;
      }
      data.insert(data.end(), buf.begin(), buf.begin() + n);
    }
    (void)WriteAll(c.get(), data.data(), data.size());
    std::lock_guard lock(mu_);
    received_ = std::move(data);
  }

  std::string path_;
  UniqueFd fd_;
  bool ok_ = false;
  std::thread thread_;
  std::mutex mu_;
  std::optional<std::vector<uint8_t>> received_;
};

class VsockLab : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string kernel = KernelDir();
    ASSERT_FALSE(kernel.empty())
        << "guest kernel not built: run kernel/build.sh (kernel/README.md) or set SM_KERNEL_DIR";
    ASSERT_TRUE(fs::exists("/dev/kvm")) << "no /dev/kvm: this test must run via tests/lab/run";
    dir_ = new fs::path(fs::path(getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp") /
                        absl::StrCat("sm-vsock-lab-", getpid()));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_ / "root");
    for (const char* d : {"dev", "proc", "sys", "tmp"}) {
      fs::create_directories(*dir_ / "root" / d);
    }
    fs::copy_file(SM_VSOCK_INIT_BIN, *dir_ / "root" / "init");
    const std::string image = (*dir_ / "root.sqfs").string();
    auto mk = ChildProcess::Spawn({.argv = {"mksquashfs", (*dir_ / "root").string(), image,
                                            "-quiet", "-noappend", "-all-root"}});
    ASSERT_TRUE(mk.ok()) << mk.status();
    auto mk_st = mk->Wait();
    ASSERT_TRUE(mk_st.ok() && mk_st->success()) << "mksquashfs failed";

    uds_ = new std::string((*dir_ / "v.sock").string());
    listener_ = new HostListener(absl::StrCat(*uds_, "_", supermachine::lab::kHostPort));
    ASSERT_TRUE(listener_->ok()) << "cannot listen on " << *uds_ << "_6000";
    serial_ = new fs::path(*dir_ / "serial.log");
    err_fd_ = new UniqueFd(
        open((*dir_ / "stderr.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    const std::string cmdline =
        "console=ttyS0 reboot=t panic=-1 root=/dev/vda rootfstype=squashfs ro init=/init quiet";
    auto child = ChildProcess::Spawn(
        {.argv = {SM_WORKER_BIN, "--serial", "file:" + serial_->string(), "--kernel",
                  kernel + "/vmlinux", "--vcpus", "2", "--disk", image + ",ro", "--vsock", *uds_,
                  "--cmdline", cmdline},
         .stderr_fd = err_fd_->get()});
    ASSERT_TRUE(child.ok()) << child.status();
    worker_ = new ChildProcess(*std::move(child));
  }

  static void TearDownTestSuite() {
    if (worker_ != nullptr) {
      if (worker_->running()) {
        (void)worker_->Signal(SIGTERM);
        auto st = worker_->WaitFor(absl::Seconds(30));
        EXPECT_TRUE(st.ok() && st->ToString() == "exited 6")
            << "worker did not stop cleanly on SIGTERM: "
            << (st.ok() ? st->ToString() : st.status().ToString());
      }
      delete worker_;
    }
    delete listener_;
    delete err_fd_;
    if (dir_ != nullptr) {
      fs::remove_all(*dir_);
    }
    delete dir_;
    delete uds_;
    delete serial_;
  }

  static std::string Diagnostics() {
    return absl::StrCat("\n--- serial ---\n", ReadFile(*serial_), "\n--- worker stderr ---\n",
                        ReadFile(*dir_ / "stderr.log"));
  }

  // Waits until the guest's echo server answers a CONNECT (the guest boots meanwhile).
  static void WaitForGuest() {
    static bool ready = false;
    if (ready) {
      return;
    }
    const absl::Time deadline = absl::Now() + absl::Seconds(300);
    std::string last;
    while (absl::Now() < deadline && worker_->running()) {
      if (ReadFile(*serial_).find("sm-vsock: echo server listening") != std::string::npos) {
        Handshake h = ConnectGuest(*uds_, supermachine::lab::kGuestEchoPort);
        if (h.fd.valid()) {
          ready = true;
          return;
        }
        last = h.reply;
      }
      absl::SleepFor(absl::Milliseconds(250));
    }
    FAIL() << "guest echo server never answered CONNECT (last reply '" << last << "')"
           << Diagnostics();
  }

  void SetUp() override {
    ASSERT_NE(worker_, nullptr);
    WaitForGuest();
  }

  static fs::path* dir_;
  static std::string* uds_;
  static fs::path* serial_;
  static UniqueFd* err_fd_;
  static HostListener* listener_;
  static ChildProcess* worker_;
};

fs::path* VsockLab::dir_ = nullptr;
std::string* VsockLab::uds_ = nullptr;
fs::path* VsockLab::serial_ = nullptr;
UniqueFd* VsockLab::err_fd_ = nullptr;
HostListener* VsockLab::listener_ = nullptr;
ChildProcess* VsockLab::worker_ = nullptr;

TEST_F(VsockLab, ConnectHandshakeRepliesOkWithHostPort) {
  Handshake h = ConnectGuest(*uds_, supermachine::lab::kGuestEchoPort);
  ASSERT_TRUE(h.fd.valid()) << "reply '" << h.reply << "'" << Diagnostics();
  uint32_t port = 0;
  EXPECT_EQ(std::sscanf(h.reply.c_str(), "OK %u", &port), 1) << h.reply;
  EXPECT_GE(port, 1u << 30) << h.reply;  // Host-initiated ports come from the high range.
  EXPECT_EQ(EchoCheck(h.fd.get(), 7, 4096), "");
}

TEST_F(VsockLab, EchoesThirtyTwoMibIntact) {
  Handshake h = ConnectGuest(*uds_, supermachine::lab::kGuestEchoPort);
  ASSERT_TRUE(h.fd.valid()) << h.reply << Diagnostics();
  uint64_t sent = 0, got = 0;
  const absl::Time start = absl::Now();
  EXPECT_EQ(EchoCheck(h.fd.get(), 1, 32u << 20, &sent, &got), "") << Diagnostics();
  EXPECT_EQ(sent, got);
  const double secs = absl::ToDoubleSeconds(absl::Now() - start);
  std::printf("vsock echo: 32 MiB each way in %.1f s (%.2f MiB/s)\n", secs, 32.0 / secs);
}

TEST_F(VsockLab, TwentyConcurrentConnectionsEchoTheirOwnData) {
  constexpr int kConns = 20;
  std::vector<std::string> errors(kConns);
  std::vector<std::thread> threads;
  threads.reserve(kConns);
  for (int i = 0; i < kConns; ++i) {
    threads.emplace_back([&, i] {
      Handshake h = ConnectGuest(*uds_, supermachine::lab::kGuestEchoPort);
      if (!h.fd.valid()) {
        errors[i] = "CONNECT reply '" + h.reply + "'";
        return;
      }
      errors[i] = EchoCheck(h.fd.get(), 100 + static_cast<uint64_t>(i), size_t{512} << 10);
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }
  for (int i = 0; i < kConns; ++i) {
    EXPECT_EQ(errors[i], "") << "connection " << i;
  }
}

TEST_F(VsockLab, GuestInitiatedConnectionReachesPathUnderscorePort) {
  const absl::Time deadline = absl::Now() + absl::Seconds(120);
  std::optional<std::vector<uint8_t>> got;
  while (!(got = listener_->received()).has_value() && absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  ASSERT_TRUE(got.has_value()) << "nothing arrived on " << *uds_ << "_6000" << Diagnostics();
  std::vector<uint8_t> want(supermachine::lab::kGuestPayloadBytes);
  FillPattern(want.data(), want.size(), 0);
  EXPECT_EQ(got->size(), want.size());
  EXPECT_TRUE(*got == want) << "guest payload corrupted";
  // The guest checks our echo of it.
  std::string serial;
  while ((serial = ReadFile(*serial_)).find("sm-vsock: guest-connect") == std::string::npos &&
         absl::Now() < deadline) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_THAT(serial, HasSubstr("sm-vsock: guest-connect ok 1048576")) << Diagnostics();
}

TEST_F(VsockLab, ConnectToAPortNobodyListensOnFailsPromptly) {
  const absl::Time start = absl::Now();
  Handshake h = ConnectGuest(*uds_, supermachine::lab::kClosedGuestPort);
  EXPECT_FALSE(h.fd.valid()) << "got '" << h.reply << "'";
  EXPECT_EQ(h.reply, "");  // Closed without a reply line.
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  // The device is still fine afterwards.
  Handshake again = ConnectGuest(*uds_, supermachine::lab::kGuestEchoPort);
  ASSERT_TRUE(again.fd.valid()) << again.reply;
  EXPECT_EQ(EchoCheck(again.fd.get(), 9, 1000), "");
}

TEST_F(VsockLab, MalformedConnectLineIsClosed) {
  UniqueFd fd = UnixConnect(*uds_);
  ASSERT_TRUE(fd.valid());
  SetTimeouts(fd.get(), 30);
  const std::string bad = "HELLO 5000\n";
  ASSERT_TRUE(WriteAll(fd.get(), reinterpret_cast<const uint8_t*>(bad.data()), bad.size()));
  char c;
  EXPECT_EQ(read(fd.get(), &c, 1), 0);  // EOF, no reply.
}

}  // namespace
