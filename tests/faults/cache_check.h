// File: cache_check.h
// After-the-fault audits shared by the fault tests: every committed cache entry is re-verified
// (blobs against the digest they are named by, squashfs layers by reading them back whole),
// and no temp/ingest file is left behind.
#pragma once

#include <string>
#include <vector>

namespace supermachine::faults {

// One line per problem in <image_cache>/blobs/sha256: a blob whose bytes do not hash to its
// name, a non-regular entry, a leftover ".ingest-*" file. Empty = the store is clean.
std::vector<std::string> AuditBlobStore(const std::string& image_cache_dir);

// One line per problem in <layer_cache>/layers: a .sqfs that libsquashfs cannot verify or read
// back, a leftover temp file, anything else. Empty = the cache is clean.
std::vector<std::string> AuditLayerCache(const std::string& layer_cache_dir);

// Number of open fds of this process (/proc/self/fd) and its resident set in KiB.
int OpenFdCount();
long ResidentKib();

}  // namespace supermachine::faults
