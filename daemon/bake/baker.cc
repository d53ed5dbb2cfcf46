// File: baker.cc
// Baker: the pipeline of baker.h. (Skeleton; the steps follow.)
#include "daemon/bake/baker.h"

namespace supermachine::bake {

struct Baker::Impl {
  BakerOptions options;
};

StoreAccess LockedStoreAccess(store::Store* store, absl::Mutex* mu) {
  return [store, mu](const StoreFn& fn) {
    absl::MutexLock lock(mu);
    return fn(*store);
  };
}

const char* StageName(BakeProgress::Stage stage) {
  switch (stage) {
    case BakeProgress::Stage::kResolve: return "resolve";
    case BakeProgress::Stage::kPull: return "pull";
    case BakeProgress::Stage::kConvert: return "convert";
    case BakeProgress::Stage::kDelta: return "delta";
    case BakeProgress::Stage::kBoot: return "boot";
    case BakeProgress::Stage::kReady: return "ready";
    case BakeProgress::Stage::kSnapshot: return "snapshot";
    case BakeProgress::Stage::kDone: return "done";
  }
  return "?";
}

Baker::Baker(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Baker::~Baker() = default;

absl::StatusOr<std::unique_ptr<Baker>> Baker::Create(BakerOptions options) {
  auto impl = std::make_unique<Impl>();
  impl->options = std::move(options);
  return std::unique_ptr<Baker>(new Baker(std::move(impl)));
}

absl::StatusOr<BakeResult> Baker::Bake(const BakeRequest&, const ProgressFn&, absl::Time) {
  return absl::UnimplementedError("bake pipeline not wired yet");
}

}  // namespace supermachine::bake
