// File: seccomp_filter.cc
// libseccomp glue: policy → filter → kernel, and the kTrap mode's SIGSYS reporter.
#include "worker/jail/seccomp_filter.h"

#include <seccomp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "worker/base/status_macros.h"

namespace supermachine::jail {
namespace {

// The highest x86_64 syscall number we name in the trap report (435 = clone3, 450s are the
// newest in 6.x); anything above reports "unknown".
constexpr int kMaxNamedSyscall = 512;

// The SIGSYS handler can call neither malloc nor libseccomp, so the names are resolved once,
// when the trap filter is loaded, into this table. It is the one piece of process-global state
// here: a signal handler has no other way to find data. Written before the handler exists,
// only read afterwards.
const char* const* g_syscall_names = nullptr;

void WriteAll(const char* s) { (void)!write(STDERR_FILENO, s, strlen(s)); }

// Async-signal-safe decimal formatting.
void WriteNumber(long v) {
  char buf[24];
  char* p = buf + sizeof(buf);
  *--p = '\0';
  const bool neg = v < 0;
  unsigned long u = neg ? static_cast<unsigned long>(-v) : static_cast<unsigned long>(v);
  do {
    *--p = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (neg) {
    *--p = '-';
  }
  WriteAll(p);
}

void SigsysReporter(int, siginfo_t* info, void*) {
  const int nr = info->si_syscall;
  const char* name = (g_syscall_names != nullptr && nr >= 0 && nr < kMaxNamedSyscall &&
                      g_syscall_names[nr] != nullptr)
                         ? g_syscall_names[nr]
                         : "unknown";
  WriteAll("supermachine-worker: seccomp violation: syscall ");
  WriteNumber(nr);
  WriteAll(" (");
  WriteAll(name);
  WriteAll("); the worker's allowlist is in docs/seccomp.md\n");
  // Die the way kKill would: SIGSYS, default action. It is blocked while this handler runs and
  // delivered as soon as it returns.
  signal(SIGSYS, SIG_DFL);
  raise(SIGSYS);
}

absl::Status InstallSigsysReporter() {
  if (g_syscall_names == nullptr) {
    auto** names = new const char*[kMaxNamedSyscall]();
    for (int nr = 0; nr < kMaxNamedSyscall; ++nr) {
      names[nr] = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);  // Kept for life.
    }
    g_syscall_names = names;
  }
  struct sigaction sa {};
  sa.sa_sigaction = SigsysReporter;
  sa.sa_flags = SA_SIGINFO;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGSYS, &sa, nullptr) != 0) {
    return base::ErrnoToStatus(errno, "install the SIGSYS reporter");
  }
  return absl::OkStatus();
}

absl::Status FromSeccompErr(int rc, absl::string_view what) {
  return rc == 0 ? absl::OkStatus() : base::ErrnoToStatus(-rc, what);
}

}  // namespace

absl::StatusOr<SeccompMode> ParseSeccompMode(absl::string_view text) {
  if (text == "on") {
    return SeccompMode::kKill;
  }
  if (text == "off") {
    return SeccompMode::kOff;
  }
  if (text == "trap") {
    return SeccompMode::kTrap;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--seccomp '", text, "': expected on, off or trap (docs/seccomp.md)"));
}

const char* SeccompModeName(SeccompMode mode) {
  switch (mode) {
    case SeccompMode::kOff:
      return "off";
    case SeccompMode::kKill:
      return "on";
    case SeccompMode::kTrap:
      return "trap";
  }
  return "?";
}

std::string SyscallName(int nr) {
  char* name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
  if (name == nullptr) {
    return "unknown";
  }
  std::string out(name);
  free(name);
  return out;
}

absl::StatusOr<SeccompFilter> SeccompFilter::Build(const SeccompPolicy& policy,
                                                   SeccompMode mode) {
  if (mode == SeccompMode::kOff) {
    return absl::InvalidArgumentError("no seccomp filter to build in mode off");
  }
  scmp_filter_ctx ctx =
      seccomp_init(mode == SeccompMode::kKill ? SCMP_ACT_KILL_PROCESS : SCMP_ACT_TRAP);
  if (ctx == nullptr) {
    return absl::InternalError("seccomp_init failed");
  }
  SeccompFilter filter(ctx, mode);
  // All threads: vCPU threads may already exist when a caller loads it later than we do.
  SM_RETURN_IF_ERROR(FromSeccompErr(seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1),
                                    "seccomp: enable TSYNC"));
  const int ioctl_nr = seccomp_syscall_resolve_name("ioctl");
  for (const SyscallRule& rule : policy.syscalls) {
    const int nr = seccomp_syscall_resolve_name(rule.name.c_str());
    if (nr == __NR_SCMP_ERROR) {
      return absl::InvalidArgumentError(
          absl::StrCat("seccomp policy: unknown syscall '", rule.name, "'"));
    }
    if (nr == ioctl_nr) {
      continue;  // Per request number, below.
    }
    int rc;
    if (rule.arg0_equals >= 0) {
      // The comparison spelled out instead of libseccomp's SCMP_A0 macro, a C99 compound
      // literal that clang refuses in C++ under -Werror (the fuzz build).
      const scmp_arg_cmp arg0{.arg = 0,
                              .op = SCMP_CMP_EQ,
                              .datum_a = static_cast<scmp_datum_t>(rule.arg0_equals),
                              .datum_b = 0};
      rc = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, 1, &arg0);
    } else {
      rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
    }
    SM_RETURN_IF_ERROR(FromSeccompErr(rc, absl::StrCat("seccomp: allow ", rule.name)));
  }
  for (const IoctlRule& rule : policy.ioctls) {
    // The kernel takes ioctl's request as an unsigned int, so compare the low 32 bits only:
    // a caller cannot slip past by setting high bits the kernel ignores, and glibc's sign
    // extension of requests with bit 31 set cannot make a legitimate call miss.
    const scmp_arg_cmp request{.arg = 1,
                               .op = SCMP_CMP_MASKED_EQ,
                               .datum_a = 0xffffffffULL,  // the mask
                               .datum_b = rule.request};
    const int rc = seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, ioctl_nr, 1, &request);
    SM_RETURN_IF_ERROR(
        FromSeccompErr(rc, absl::StrCat("seccomp: allow ioctl ", rule.name)));
  }
  return filter;
}

SeccompFilter::SeccompFilter(SeccompFilter&& other) noexcept
    : ctx_(other.ctx_), mode_(other.mode_) {
  other.ctx_ = nullptr;
}

SeccompFilter& SeccompFilter::operator=(SeccompFilter&& other) noexcept {
  if (this != &other) {
    if (ctx_ != nullptr) {
      seccomp_release(ctx_);
    }
    ctx_ = other.ctx_;
    mode_ = other.mode_;
    other.ctx_ = nullptr;
  }
  return *this;
}

SeccompFilter::~SeccompFilter() {
  if (ctx_ != nullptr) {
    seccomp_release(ctx_);
  }
}

absl::StatusOr<std::vector<uint8_t>> SeccompFilter::ExportBpf() const {
  // seccomp_export_bpf writes to an fd; a pipe could fill up and block, so use a temp file.
  FILE* f = tmpfile();
  if (f == nullptr) {
    return base::ErrnoToStatus(errno, "seccomp: temp file for the BPF export");
  }
  const int rc = seccomp_export_bpf(ctx_, fileno(f));
  std::vector<uint8_t> out;
  if (rc == 0) {
    rewind(f);
    uint8_t buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
      out.insert(out.end(), buf, buf + n);
    }
  }
  fclose(f);
  SM_RETURN_IF_ERROR(FromSeccompErr(rc, "seccomp: export BPF"));
  return out;
}

absl::Status SeccompFilter::Load() {
  if (ctx_ == nullptr) {
    return absl::FailedPreconditionError("seccomp filter already released");
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) {
    return base::ErrnoToStatus(errno, "prctl(PR_SET_NO_NEW_PRIVS)");
  }
  if (mode_ == SeccompMode::kTrap) {
    SM_RETURN_IF_ERROR(InstallSigsysReporter());
  }
  return FromSeccompErr(seccomp_load(ctx_), "seccomp: load the filter");
}

absl::Status InstallWorkerSeccomp(SeccompMode mode) {
  if (mode == SeccompMode::kOff) {
    return absl::OkStatus();
  }
  SM_ASSIGN_OR_RETURN(SeccompFilter filter, SeccompFilter::Build(WorkerRunPolicy(), mode));
  return filter.Load();
}

}  // namespace supermachine::jail
