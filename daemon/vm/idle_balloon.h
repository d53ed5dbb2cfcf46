// File: idle_balloon.h
// IdleBalloon: the daemon's idle-VM balloon policy (issue #12, docs/balloon.md "Daemon
// policy"). A handed-out VM with no activity for `idle_after` is asked to inflate its balloon
// to `target_percent` of guest RAM (the worker's `balloon-target PAGES` control verb), which
// returns that memory to the host; the next activity (exec, a new forwarded connection) first
// sends `balloon-target 0` and restarts the idle timer. Deflating is a single control exchange
// and the guest gets pages back faster under pressure through DEFLATE_ON_OOM, so activity
// waits for the deflate command only, never for the guest to finish deflating.
//
// Like the supervisor (supervisor.h) this is decision logic over injected hooks — a clock,
// "send this control command to VM id", "how much RAM has this snapshot's guest" — so its
// tests drive it tick by tick with no threads and no worker. VmManager owns one, calls Tick
// with its handed-out VMs from a thread of its own and Begin from the exec path. Hooks are
// never called with the policy's lock held. Commands to one VM are serialized, so an inflate
// in flight is always followed, not overtaken, by the deflate of an activity that raced it.
//
// A worker that answers it has no balloon device (or does not know the verb, an older worker)
// is never asked again; one event says so. Pool VMs are not ours to track: fresh restores hold
// nothing to reclaim. Not done: a VM re-adopted after a daemon restart that was inflated
// before it is treated as deflated until its next idle period.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace supermachine::vm {

// Bounds of the target (config balloon_idle_target_percent): 0 would be no policy, and a
// guest asked to give up all of its RAM would have none left to run its agent with.
inline constexpr uint32_t kMinBalloonTargetPercent = 1;
inline constexpr uint32_t kMaxBalloonTargetPercent = 95;
// Balloon pages are 4 KiB (virtio-balloon's unit, whatever the guest's page size).
inline constexpr uint64_t kBalloonPagesPerMib = 256;

struct IdleBalloonConfig {
  absl::Duration idle_after = absl::ZeroDuration();  // zero: the policy is off
  uint32_t target_percent = 70;                      // of guest RAM, kMin..kMaxBalloonTargetPercent
  bool enabled() const { return idle_after > absl::ZeroDuration(); }
};

// `percent` of `guest_ram_mib` in 4 KiB balloon pages, rounded down.
uint64_t BalloonTargetPages(uint64_t guest_ram_mib, uint32_t percent);

// What a worker's reply to `balloon-target` means.
enum class BalloonReply {
  kOk,           // "OK balloon-target pages=N"
  kUnsupported,  // no balloon device, or a worker without the verb: never ask it again
  kError,        // anything else: try again after another idle period
};
BalloonReply ClassifyBalloonReply(absl::string_view reply);

struct IdleBalloonEvent {
  enum class Kind {
    kInflated,     // the worker accepted the idle target (pages)
    kDeflated,     // activity: the worker accepted target 0
    kUnsupported,  // no balloon device, no control socket, or guest RAM size unknown (detail)
    kFailed,       // a command failed (detail); inflate is retried after another idle period
  };
  Kind kind = Kind::kInflated;
  std::string vm_id;
  uint64_t pages = 0;
  std::string detail;
};

struct IdleBalloonHooks {
  std::function<absl::Time()> now;
  // One control command line to VM `id`'s worker; its reply line. FailedPrecondition means the
  // VM cannot take control commands at all (treated as kUnsupported); other errors as kError.
  std::function<absl::StatusOr<std::string>(const std::string& id, const std::string& command)>
      send;
  // The guest RAM size of a snapshot's VMs in MiB; nullopt when unknown (the VM is skipped).
  std::function<std::optional<uint64_t>(const std::string& snapshot)> guest_ram_mib;
  // Optional observer (logs, metrics). Called without the policy's lock held.
  std::function<void(const IdleBalloonEvent&)> on_event;
};

// A handed-out VM as Tick sees it.
struct IdleVm {
  std::string id;
  std::string snapshot;
};

class IdleBalloon {
 private:
  struct Entry;

 public:
  // Activity in one VM: while any of a VM's scopes is alive it is not idle; its idle timer
  // restarts when the last one ends. Move-only; an empty scope (policy off) does nothing.
  class Activity {
   public:
    Activity() = default;
    Activity(Activity&& other) noexcept;
    Activity& operator=(Activity&& other) noexcept;
    Activity(const Activity&) = delete;
    Activity& operator=(const Activity&) = delete;
    ~Activity() { Reset(); }

   private:
    friend class IdleBalloon;
    Activity(IdleBalloon* owner, std::shared_ptr<Entry> entry)
        : owner_(owner), entry_(std::move(entry)) {}
    void Reset();
    IdleBalloon* owner_ = nullptr;
    std::shared_ptr<Entry> entry_;
  };

  struct State {
    bool inflated = false;
    bool unsupported = false;
    uint64_t target_pages = 0;  // 0: not yet known, or the VM is skipped
    int active = 0;             // live Activity scopes
  };

  IdleBalloon(IdleBalloonConfig config, IdleBalloonHooks hooks)
      : config_(config), hooks_(std::move(hooks)) {}
  IdleBalloon(const IdleBalloon&) = delete;
  IdleBalloon& operator=(const IdleBalloon&) = delete;

  const IdleBalloonConfig& config() const { return config_; }

  // Activity begins in VM `id`: if its balloon is inflated, `balloon-target 0` is sent first
  // (this returns once the worker answered or the send failed). Policy off: an empty scope.
  [[nodiscard]] Activity Begin(const std::string& id);
  // A one-off activity (a new forwarded connection): Begin and end at once.
  void Touch(const std::string& id) { static_cast<void>(Begin(id)); }
  // `handed_out` is every handed-out VM now; VMs no longer in it are forgotten. Inflates the
  // ones idle for config.idle_after, one command each, in this thread.
  void Tick(const std::vector<IdleVm>& handed_out);

  size_t InflatedCount() const;
  std::optional<State> Get(const std::string& id) const;

 private:
  struct Entry {
    explicit Entry(absl::Time now) : idle_since(now) {}
    // Serializes this VM's commands; taken before mu_, never while holding it.
    absl::Mutex send_mu;
    // The rest is guarded by IdleBalloon::mu_.
    absl::Time idle_since;      // last activity end, first sighting, or last failed inflate
    int active = 0;
    bool sized = false;         // guest_ram_mib was asked
    uint64_t target_pages = 0;  // 0: skipped (size unknown)
    bool inflated = false;
    bool unsupported = false;
  };
  void End(Entry& entry);
  // Sends `balloon-target pages` to `id`; returns what the reply means and a detail for events.
  BalloonReply Send(const std::string& id, uint64_t pages, std::string* detail);
  void Emit(IdleBalloonEvent event) const;
  void Inflate(const std::string& id, const std::shared_ptr<Entry>& entry);

  const IdleBalloonConfig config_;
  IdleBalloonHooks hooks_;
  mutable absl::Mutex mu_;
  std::map<std::string, std::shared_ptr<Entry>> vms_ ABSL_GUARDED_BY(mu_);
};

}  // namespace supermachine::vm
