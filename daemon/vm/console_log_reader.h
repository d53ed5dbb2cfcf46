// File: console_log_reader.h
// ConsoleLogReader: reads a VM's console log as the worker writes it, across the worker's
// rotations (worker/vmm/rotating_log.h: FILE is renamed to FILE.1 and a new FILE started
// before FILE would pass its size limit). What the Logs RPC streams.
//
// From the start it yields FILE.1 (when there is one) then FILE; then whatever is appended.
// At the end of FILE it notices that FILE was replaced (its inode changed): it first drains the
// old file to its end (the bytes written just before the rename), then reads the new FILE from
// its start — no byte is lost or repeated. If FILE was replaced twice between two reads, the
// middle file (FILE.1 by then) is read too; only a third rotation before a read loses output,
// and that output is gone from disk anyway. A FILE that shrank (truncated in place, the
// worker's fallback when a rename fails) is read again from its start.
#pragma once

#include <deque>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "worker/base/unique_fd.h"

namespace supermachine::vm {

class ConsoleLogReader {
 public:
  explicit ConsoleLogReader(std::string path) : path_(std::move(path)) {}

  // Up to out.size() bytes of what follows what was read so far; 0 when nothing more is there
  // yet (also while FILE does not exist). Call again later to follow. Errors: a read failed.
  absl::StatusOr<size_t> Read(absl::Span<char> out);

 private:
  struct Open {
    base::UniqueFd fd;
    dev_t dev = 0;
    ino_t ino = 0;
  };
  // Opens `path` if it is not one of `known`; false when it is missing or already known.
  static bool OpenNew(const std::string& path, const std::deque<Open>& known, Open* out);
  // At the end of the newest file: queues FILE.1 (if unseen) and FILE when FILE was replaced,
  // or rewinds a truncated file. False when there is nothing new to read.
  bool CatchUp();

  const std::string path_;
  // Files to read, oldest first; the last one is the live FILE (or what was FILE).
  std::deque<Open> files_;
};

}  // namespace supermachine::vm
