// File: idle_balloon.cc
#include "daemon/vm/idle_balloon.h"

#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace supermachine::vm {

uint64_t BalloonTargetPages(uint64_t guest_ram_mib, uint32_t percent) {
  // Pages first, then the percentage: exact for every RAM size a worker accepts (far below
  // 2^64 / 100 pages).
  return guest_ram_mib * kBalloonPagesPerMib * percent / 100;
}

BalloonReply ClassifyBalloonReply(absl::string_view reply) {
  reply = absl::StripAsciiWhitespace(reply);
  if (absl::StartsWith(reply, "OK balloon-target")) {
    return BalloonReply::kOk;
  }
  const std::string lower = absl::AsciiStrToLower(reply);
  // "ERR no balloon device" from a worker without the device; "ERR unknown command
  // 'balloon-target' ..." from a worker older than the verb. Neither changes while it runs.
  if (absl::StartsWith(lower, "err") &&
      (absl::StrContains(lower, "no balloon") || absl::StrContains(lower, "unknown command"))) {
    return BalloonReply::kUnsupported;
  }
  return BalloonReply::kError;
}

void IdleBalloon::Activity::Reset() {
  if (owner_ != nullptr && entry_ != nullptr) {
    owner_->End(*entry_);
  }
  owner_ = nullptr;
  entry_.reset();
}

IdleBalloon::Activity::Activity(Activity&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)), entry_(std::move(other.entry_)) {}

IdleBalloon::Activity& IdleBalloon::Activity::operator=(Activity&& other) noexcept {
  if (this != &other) {
    Reset();
    owner_ = std::exchange(other.owner_, nullptr);
    entry_ = std::move(other.entry_);
  }
  return *this;
}

void IdleBalloon::Emit(IdleBalloonEvent event) const {
  if (hooks_.on_event) {
    hooks_.on_event(event);
  }
}

BalloonReply IdleBalloon::Send(const std::string& id, uint64_t pages, std::string* detail) {
  absl::StatusOr<std::string> reply = hooks_.send(id, absl::StrCat("balloon-target ", pages));
  if (!reply.ok()) {
    *detail = std::string(reply.status().message());
    return absl::IsFailedPrecondition(reply.status()) ? BalloonReply::kUnsupported
                                                      : BalloonReply::kError;
  }
  *detail = *reply;
  return ClassifyBalloonReply(*reply);
}

IdleBalloon::Activity IdleBalloon::Begin(const std::string& id) {
  if (!config_.enabled()) {
    return Activity();
  }
  std::shared_ptr<Entry> entry;
  {
    absl::MutexLock lock(&mu_);
    // A VM not seen by Tick yet gets its entry here, so an exec started right after Acquire
    // already keeps it busy; Tick asks for its size later.
    std::shared_ptr<Entry>& slot = vms_[id];
    if (slot == nullptr) {
      slot = std::make_shared<Entry>(hooks_.now());
    }
    entry = slot;
    ++entry->active;
    entry->idle_since = hooks_.now();
  }
  Activity scope(this, entry);
  // After marking it active: an inflate holding send_mu now finishes first and is then undone
  // here; one that has not started sees the VM active and does not start.
  absl::MutexLock send_lock(&entry->send_mu);
  {
    absl::MutexLock lock(&mu_);
    if (!entry->inflated) {
      return scope;
    }
  }
  std::string detail;
  const BalloonReply reply = Send(id, 0, &detail);
  {
    absl::MutexLock lock(&mu_);
    if (reply != BalloonReply::kError) {
      // kUnsupported after an accepted inflate means a different worker answers now; either
      // way nothing is inflated any more as far as we can tell.
      entry->inflated = false;
    }
  }
  // On failure it stays marked inflated, so the next activity tries again (the guest still
  // takes pages back under pressure through DEFLATE_ON_OOM meanwhile).
  Emit(IdleBalloonEvent{.kind = reply == BalloonReply::kError ? IdleBalloonEvent::Kind::kFailed
                                                              : IdleBalloonEvent::Kind::kDeflated,
                        .vm_id = id,
                        .detail = reply == BalloonReply::kError
                                      ? absl::StrCat("deflate: ", detail)
                                      : std::string()});
  return scope;
}

void IdleBalloon::End(Entry& entry) {
  absl::MutexLock lock(&mu_);
  --entry.active;
  entry.idle_since = hooks_.now();
}

void IdleBalloon::Tick(const std::vector<IdleVm>& handed_out) {
  if (!config_.enabled()) {
    return;
  }
  const absl::Time now = hooks_.now();
  std::vector<std::pair<IdleVm, std::shared_ptr<Entry>>> unsized;
  {
    absl::MutexLock lock(&mu_);
    std::set<std::string> live;
    for (const IdleVm& vm : handed_out) {
      live.insert(vm.id);
      std::shared_ptr<Entry>& slot = vms_[vm.id];
      if (slot == nullptr) {
        slot = std::make_shared<Entry>(now);
      }
      if (!slot->sized) {
        unsized.emplace_back(vm, slot);
      }
    }
    for (auto it = vms_.begin(); it != vms_.end();) {
      // An active one stays: its Begin may have raced the list this tick was given.
      if (live.count(it->first) == 0 && it->second->active == 0) {
        it = vms_.erase(it);
      } else {
        ++it;
      }
    }
  }
  for (auto& [vm, entry] : unsized) {
    const std::optional<uint64_t> mib = hooks_.guest_ram_mib(vm.snapshot);
    {
      absl::MutexLock lock(&mu_);
      entry->sized = true;
      entry->target_pages =
          mib ? BalloonTargetPages(*mib, config_.target_percent) : uint64_t{0};
    }
    if (!mib) {
      Emit(IdleBalloonEvent{
          .kind = IdleBalloonEvent::Kind::kUnsupported,
          .vm_id = vm.id,
          .detail = absl::StrCat("guest RAM size of snapshot '", vm.snapshot, "' unknown")});
    }
  }
  std::vector<std::pair<std::string, std::shared_ptr<Entry>>> due;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, e] : vms_) {
      if (e->target_pages != 0 && !e->inflated && !e->unsupported && e->active == 0 &&
          now - e->idle_since >= config_.idle_after) {
        due.emplace_back(id, e);
      }
    }
  }
  for (const auto& [id, entry] : due) {
    Inflate(id, entry);
  }
}

void IdleBalloon::Inflate(const std::string& id, const std::shared_ptr<Entry>& entry) {
  // Busy means an activity is deflating it: it is not idle.
  if (!entry->send_mu.TryLock()) {
    return;
  }
  uint64_t pages = 0;
  {
    absl::MutexLock lock(&mu_);
    // Again under send_mu: an activity may have begun since the due list was made.
    if (entry->active != 0 || entry->inflated || hooks_.now() - entry->idle_since <
                                                     config_.idle_after) {
      entry->send_mu.Unlock();
      return;
    }
    pages = entry->target_pages;
  }
  std::string detail;
  const BalloonReply reply = Send(id, pages, &detail);
  IdleBalloonEvent event{.vm_id = id, .pages = pages};
  {
    absl::MutexLock lock(&mu_);
    switch (reply) {
      case BalloonReply::kOk:
        entry->inflated = true;
        event.kind = IdleBalloonEvent::Kind::kInflated;
        break;
      case BalloonReply::kUnsupported:
        entry->unsupported = true;
        event.kind = IdleBalloonEvent::Kind::kUnsupported;
        event.detail = detail;
        break;
      case BalloonReply::kError:
        // Not every tick: the next try comes after another idle period.
        entry->idle_since = hooks_.now();
        event.kind = IdleBalloonEvent::Kind::kFailed;
        event.detail = absl::StrCat("inflate: ", detail);
        break;
    }
  }
  entry->send_mu.Unlock();
  Emit(event);
}

size_t IdleBalloon::InflatedCount() const {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, e] : vms_) {
    n += e->inflated ? 1 : 0;
  }
  return n;
}

std::optional<IdleBalloon::State> IdleBalloon::Get(const std::string& id) const {
  absl::MutexLock lock(&mu_);
  auto it = vms_.find(id);
  if (it == vms_.end()) {
    return std::nullopt;
  }
  const Entry& e = *it->second;
  return State{.inflated = e.inflated,
               .unsupported = e.unsupported,
               .target_pages = e.target_pages,
               .active = e.active};
}

}  // namespace supermachine::vm
