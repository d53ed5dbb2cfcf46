// File: store_journal.h
// VmJournal over the daemon's Store, serialised by the mutex the API service also holds for
// every store call (one SQLite connection, not shared across threads).
#pragma once

#include "absl/synchronization/mutex.h"
#include "daemon/store/store.h"
#include "daemon/vm/vm_instance.h"

namespace supermachine::vm {

class StoreJournal : public VmJournal {
 public:
  StoreJournal(store::Store* store, absl::Mutex* mu) : store_(store), mu_(mu) {}
  absl::Status Journal(const store::VmRecord& vm) override {
    absl::MutexLock lock(mu_);
    return store_->JournalVm(vm);
  }
  absl::Status MarkRunning(const std::string& id) override {
    absl::MutexLock lock(mu_);
    return store_->MarkVmRunning(id);
  }
  absl::Status Acquired(const store::VmRecord& vm) override {
    absl::MutexLock lock(mu_);
    return store_->MarkVmAcquired(vm);
  }
  absl::Status End(const std::string& id, const VmEnd& end) override {
    absl::MutexLock lock(mu_);
    return store_->EndVm(id, end.cause, end.exit_code, end.signal);
  }

 private:
  store::Store* store_;
  absl::Mutex* mu_;
};

}  // namespace supermachine::vm
