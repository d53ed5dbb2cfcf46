// File: json_util.h
// Small typed accessors over nlohmann::json that report a missing or mistyped field as a
// Status instead of throwing. Internal to sm_image.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace supermachine::image::json_util {

// Parses text; InvalidArgument "<what>: malformed JSON at byte N: ..." on error. Never throws.
absl::StatusOr<nlohmann::json> Parse(absl::string_view text, absl::string_view what);

// Field accessors. A missing optional field yields the default; a present field of the wrong
// type is InvalidArgument "<what>: field 'x' must be a string".
absl::StatusOr<std::string> RequiredString(const nlohmann::json& obj, const char* key,
                                           absl::string_view what);
absl::StatusOr<std::string> OptionalString(const nlohmann::json& obj, const char* key,
                                           absl::string_view what);
absl::StatusOr<int64_t> RequiredInt(const nlohmann::json& obj, const char* key,
                                    absl::string_view what);
// Array of strings; null or missing → nullopt.
absl::StatusOr<std::optional<std::vector<std::string>>> OptionalStringArray(
    const nlohmann::json& obj, const char* key, absl::string_view what);
absl::StatusOr<std::map<std::string, std::string>> OptionalStringMap(const nlohmann::json& obj,
                                                                     const char* key,
                                                                     absl::string_view what);

}  // namespace supermachine::image::json_util
