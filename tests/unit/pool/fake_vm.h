// File: fake_vm.h
// Fakes of the VM seams (daemon/vm/vm_instance.h) for the pool and manager tests: a launcher
// whose VMs are plain objects a test can "kill", and a journal that records every call.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "daemon/vm/vm_instance.h"

namespace supermachine::vm::testing {

struct FakeVmState {
  std::atomic<bool> dead{false};
  std::atomic<bool> stopped{false};
  std::atomic<bool> detached{false};  // left running for the next daemon (Detach)
};

class FakeVm : public VmInstance {
 public:
  FakeVm(std::string id, std::shared_ptr<FakeVmState> state,
         const agent::AgentClient* agent = nullptr, std::string console = "/nonexistent")
      : id_(std::move(id)), console_(std::move(console)), state_(std::move(state)),
        agent_(agent) {}
  ~FakeVm() override { Stop(absl::ZeroDuration()); }
  const std::string& id() const override { return id_; }
  int pid() const override { return 4242; }
  const std::string& vsock_socket() const override { return path_; }
  const std::string& console_log() const override { return console_; }
  const agent::AgentClient* agent() const override { return agent_; }
  std::optional<VmEnd> CheckExited() override {
    if (state_->dead && !state_->stopped) {
      return VmEnd{.cause = store::EndCause::kWorkerCrash, .signal = 9};
    }
    return std::nullopt;
  }
  void Stop(absl::Duration) override {
    if (!state_->detached) {
      state_->stopped = true;
    }
  }
  void Detach() override {
    if (!state_->stopped) {
      state_->detached = true;
    }
  }

 private:
  std::string id_;
  std::string path_ = "/nonexistent";
  std::string console_;
  std::shared_ptr<FakeVmState> state_;
  const agent::AgentClient* agent_;
};

class FakeJournal : public VmJournal {
 public:
  absl::Status Journal(const store::VmRecord& vm) override {
    std::lock_guard<std::mutex> lock(mu_);
    journaled_.push_back(vm.id);
    return absl::OkStatus();
  }
  absl::Status MarkRunning(const std::string&) override { return absl::OkStatus(); }
  absl::Status Acquired(const store::VmRecord& vm) override {
    std::lock_guard<std::mutex> lock(mu_);
    acquired_[vm.id] = vm;
    return absl::OkStatus();
  }
  std::optional<store::VmRecord> AcquiredOf(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = acquired_.find(id);
    return it == acquired_.end() ? std::nullopt : std::optional<store::VmRecord>(it->second);
  }
  absl::Status End(const std::string& id, const VmEnd& end) override {
    std::lock_guard<std::mutex> lock(mu_);
    ends_[id] = end.cause;
    return absl::OkStatus();
  }
  std::optional<store::EndCause> EndOf(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = ends_.find(id);
    return it == ends_.end() ? std::nullopt : std::optional<store::EndCause>(it->second);
  }
  size_t EndCount() {
    std::lock_guard<std::mutex> lock(mu_);
    return ends_.size();
  }

 private:
  std::mutex mu_;
  std::vector<std::string> journaled_;
  std::map<std::string, store::EndCause> ends_;
  std::map<std::string, store::VmRecord> acquired_;
};

class FakeLauncher : public VmLauncher {
 public:
  explicit FakeLauncher(FakeJournal* journal) : journal_(journal) {}
  absl::StatusOr<std::unique_ptr<VmInstance>> Launch(const LaunchRequest& request,
                                                    absl::Time deadline) override {
    launches_++;
    absl::Time ready = absl::Now() + delay_;
    if (ready > deadline) {
      absl::SleepFor(std::max(absl::ZeroDuration(), deadline - absl::Now()));
      return absl::DeadlineExceededError("fake restore too slow");
    }
    absl::SleepFor(delay_);
    if (fail_) {
      return absl::FailedPreconditionError("fake restore failed");
    }
    store::VmRecord rec{.id = request.vm_id};
    (void)journal_->Journal(rec);
    auto state = std::make_shared<FakeVmState>();
    {
      std::lock_guard<std::mutex> lock(mu_);
      states_[request.vm_id] = state;
      volume_files_[request.vm_id] = request.volume_files;
    }
    return std::make_unique<FakeVm>(
        request.vm_id, state, agent_,
        console_dir_.empty() ? "/nonexistent" : console_dir_ + "/" + request.vm_id + ".log");
  }
  // The named volume files the launch of `id` was given (disk id -> file).
  std::map<std::string, std::string> VolumeFiles(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    return volume_files_.at(id);
  }
  // Every VM id launched so far.
  std::vector<std::string> Ids() {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<std::string> ids;
    for (const auto& [id, state] : states_) {
      ids.push_back(id);
    }
    return ids;
  }
  std::shared_ptr<FakeVmState> State(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    return states_.at(id);
  }

  std::atomic<int> launches_{0};
  std::atomic<bool> fail_{false};
  absl::Duration delay_ = absl::Milliseconds(5);
  const agent::AgentClient* agent_ = nullptr;  // given to every VM (null: none)
  // When set, VM <id>'s console log is <console_dir_>/<id>.log (written by the test).
  std::string console_dir_;

 private:
  FakeJournal* journal_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<FakeVmState>> states_;
  std::map<std::string, std::map<std::string, std::string>> volume_files_;
};

// Polls `cond` until true or `timeout`; returns its last value.
template <typename F>
bool Eventually(F cond, absl::Duration timeout = absl::Seconds(5)) {
  absl::Time end = absl::Now() + timeout;
  while (absl::Now() < end) {
    if (cond()) {
      return true;
    }
    absl::SleepFor(absl::Milliseconds(5));
  }
  return cond();
}

}  // namespace supermachine::vm::testing
