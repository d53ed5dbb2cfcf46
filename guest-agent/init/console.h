// File: guest-agent/init/console.h
// Makes sure PID 1's stdin/stdout/stderr are the console.
#pragma once

namespace supermachine::agent {

// The kernel hands /init fds 0-2 on /dev/console only if the initramfs has that node. Once
// devtmpfs is mounted, this reopens /dev/console onto any of fds 0-2 that are not open.
// Returns false if the console cannot be opened (output then goes nowhere).
bool AttachConsole();

}  // namespace supermachine::agent
