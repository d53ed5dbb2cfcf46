// File: worker_control.h
// Test support: commands on a worker's control socket (`supermachine-worker --control`,
// docs/snapshot.md "Control socket"): connects (retrying while the worker starts up), sends
// `line`, returns the one-line reply without its newline; and the counters read out of such a
// reply. Shared by the tests that drive real workers (sandbox, restore CLI, snapshot faults,
// the balloon, net and supervision lab tests).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace supermachine::test_support {

// Retries the connect every 10 ms for up to `connect_wait_ms` (a worker binds its control
// socket during start-up). Returns "(no control socket at PATH)" or "(write failed)" instead
// of a reply when the exchange could not happen, so a test's EXPECT shows why.
std::string WorkerCommand(const std::string& control_socket, const std::string& line,
                          int connect_wait_ms = 10000);

// Several commands over one connection, in order (e.g. "snapshot DIR" then "exit"); one reply
// per line, each one of the placeholders above when the exchange could not happen.
std::vector<std::string> WorkerCommands(const std::string& control_socket,
                                        const std::vector<std::string>& lines,
                                        int connect_wait_ms = 10000);

// The unsigned number of the item `key=N` in a reply of space-separated items ("OK balloon
// reported_ranges=3 ... actual_pages=0 rejected_chains=0", "OK net mac=... tx_bytes=1380").
// nullopt when no item is `key=` exactly or its value is not a number, so that
// EXPECT_EQ(ReplyField(reply, "rejected_chains"), 0u) fails on a reply without the counter
// instead of passing.
std::optional<uint64_t> ReplyField(const std::string& reply, const std::string& key);

}  // namespace supermachine::test_support
