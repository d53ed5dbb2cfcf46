// File: json_util.cc
// Exception-free JSON field access: nlohmann exceptions stop here.
#include "daemon/image/json_util.h"

#include "absl/strings/str_cat.h"

namespace supermachine::image::json_util {
namespace {

absl::Status TypeError(absl::string_view what, const char* key, absl::string_view type) {
  return absl::InvalidArgumentError(absl::StrCat(what, ": field '", key, "' must be ", type));
}

}  // namespace

absl::StatusOr<nlohmann::json> Parse(absl::string_view text, absl::string_view what) {
  // allow_exceptions=false: a parse error yields a discarded value instead of throwing.
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr,
                                           /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": malformed JSON"));
  }
  return j;
}

absl::StatusOr<std::string> RequiredString(const nlohmann::json& obj, const char* key,
                                           absl::string_view what) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": missing field '", key, "'"));
  }
  if (!it->is_string()) {
    return TypeError(what, key, "a string");
  }
  return it->get<std::string>();
}

absl::StatusOr<std::string> OptionalString(const nlohmann::json& obj, const char* key,
                                           absl::string_view what) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return std::string();
  }
  if (!it->is_string()) {
    return TypeError(what, key, "a string");
  }
  return it->get<std::string>();
}

absl::StatusOr<int64_t> RequiredInt(const nlohmann::json& obj, const char* key,
                                    absl::string_view what) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return absl::InvalidArgumentError(absl::StrCat(what, ": missing field '", key, "'"));
  }
  if (it->is_number_unsigned()) {
    const uint64_t v = it->get<uint64_t>();
    if (v > static_cast<uint64_t>(INT64_MAX)) {
      return TypeError(what, key, "an integer below 2^63");
    }
    return static_cast<int64_t>(v);
  }
  if (!it->is_number_integer()) {
    return TypeError(what, key, "an integer");
  }
  return it->get<int64_t>();
}

absl::StatusOr<std::optional<std::vector<std::string>>> OptionalStringArray(
    const nlohmann::json& obj, const char* key, absl::string_view what) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return std::optional<std::vector<std::string>>();
  }
  if (!it->is_array()) {
    return TypeError(what, key, "an array of strings");
  }
  std::vector<std::string> out;
  out.reserve(it->size());
  for (const auto& e : *it) {
    if (!e.is_string()) {
      return TypeError(what, key, "an array of strings");
    }
    out.push_back(e.get<std::string>());
  }
  return std::optional<std::vector<std::string>>(std::move(out));
}

absl::StatusOr<std::map<std::string, std::string>> OptionalStringMap(const nlohmann::json& obj,
                                                                     const char* key,
                                                                     absl::string_view what) {
  std::map<std::string, std::string> out;
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) {
    return out;
  }
  if (!it->is_object()) {
    return TypeError(what, key, "an object of strings");
  }
  for (auto e = it->begin(); e != it->end(); ++e) {
    if (!e.value().is_string()) {
      return TypeError(what, key, "an object of strings");
    }
    out[e.key()] = e.value().get<std::string>();
  }
  return out;
}

}  // namespace supermachine::image::json_util
