// File: wire.h
// Conversions between the client's plain values (types.h) and proto/agent.proto messages, in
// one place so the API never leaks wire types and every field is mapped exactly once.
#pragma once

#include "daemon/agent/types.h"
#include "proto/agent.pb.h"

namespace supermachine::agent {

ExitInfo ExitFromProto(const v1::ExecExit& exit);
FileInfo FileInfoFromProto(const v1::FileInfo& info);
PingInfo PingFromProto(const v1::Pong& pong);
void ExecToProto(const ExecOptions& options, v1::ExecRequest* request);
void ReadyToProto(const ReadyCondition& condition, v1::WaitReadyRequest* request);
void RestoreToProto(const RestoreInfo& info, v1::RestoredRequest* request);

}  // namespace supermachine::agent
