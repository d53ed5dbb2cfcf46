// File: proc_memory.h
// What a process holds in memory, from /proc/PID/smaps and /proc/PID/status, split the way the
// memory benchmarks (snapshot clones, daemon density) need it. The guest RAM of a restored
// worker is the MAP_PRIVATE mapping of the snapshot's memory file: a page the guest (or the
// worker, or KVM on its behalf) wrote after the restore is a copy-on-write copy, which smaps
// counts as `Anonymous` in that mapping; a page only read is the page-cache page of the file,
// shared with every clone that read it. So `guest_written_mib` is exactly the memory a clone
// must own, and everything else it holds privately is overhead.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace supermachine::bench {

struct ProcessMemory {
  double private_mib = 0;        // Private_Clean + Private_Dirty, whole process.
  double private_dirty_mib = 0;  // Private_Dirty, whole process.
  double pss_mib = 0;
  double rss_mib = 0;
  double guest_written_mib = 0;  // Anonymous in the guest RAM mapping(s): CoW copies.
  double guest_read_mib = 0;     // Rss - Anonymous there: page-cache pages of the memory file.
  // Private_* - Anonymous there: file pages no other process maps (on tmpfs they count as
  // dirty). Not written by the guest; they turn into shared pages once another clone reads them.
  double guest_file_private_mib = 0;
  double other_private_mib = 0;  // Private_* outside guest RAM: heap, stacks, binary data.
  // Anonymous outside guest RAM: what the worker owns whatever other processes map (Private_*
  // also counts library code and file pages only this process maps, e.g. with one clone).
  double other_anon_mib = 0;
  double page_tables_mib = 0;    // VmPTE: the process's own page tables (not KVM's NPT/EPT).
  // The five largest private non-guest mappings ("name: KiB"), to see where overhead sits.
  std::vector<std::string> top_other;
  bool ok = false;  // false when /proc/PID/smaps could not be read (the process is gone)
};

// `guest_memory_file`: the path the guest RAM mapping shows in smaps (the snapshot's memory
// file, canonical); "" for a process that has none (every mapping is then "other").
ProcessMemory ReadProcessMemory(pid_t pid, const std::string& guest_memory_file);

// A VM's whole footprint: `pid` and every process below it, summed (top_other from the one with
// the most private memory). The daemon tracks a jailed worker (its default as root) by its PID
// namespace keeper, whose only child is the VMM; both are the VM's cost. ok: `pid` was read.
ProcessMemory ReadProcessTreeMemory(pid_t pid, const std::string& guest_memory_file);

// MemAvailable from /proc/meminfo, MiB (-1 if unreadable): the host-wide view, which also counts
// page cache and kernel memory (KVM's own page tables, for instance) that no smaps shows.
double MemAvailableMib();

}  // namespace supermachine::bench
