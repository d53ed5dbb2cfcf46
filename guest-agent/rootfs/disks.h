// File: guest-agent/rootfs/disks.h
// Finds virtio-blk disks by id. The worker's `--disk PATH,id=NAME` (default `diskN`) answers
// VIRTIO_BLK_T_GET_ID with NAME, which Linux shows as /sys/block/vdX/serial; ids, not probe
// order, tie the launch config's layer list to devices.
#pragma once

#include <map>
#include <string>

namespace supermachine::agent {

// Maps serial → "/dev/<name>" for every block device under `sys_block_dir` (normally
// /sys/block) that has a non-empty `serial` file. Trailing whitespace/NULs are stripped.
std::map<std::string, std::string> DisksBySerial(const std::string& sys_block_dir);

}  // namespace supermachine::agent
