// File: registry_client.cc
// Distribution v2 requests, the 401 → token/Basic dance, retries, and error mapping.
#include "daemon/image/registry_client.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "daemon/image/json_util.h"
#include "daemon/image/media_types.h"
#include "daemon/image/www_authenticate.h"
#include "worker/base/status_macros.h"

namespace supermachine::image {
namespace {

constexpr int64_t kMaxManifestBytes = 4 << 20;  // the distribution spec's suggested limit
constexpr absl::Duration kMaxRetryAfter = absl::Seconds(30);

// Percent-encodes a query value.
std::string QueryEscape(absl::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xf]);
    }
  }
  return out;
}

// The registry's own words from a JSON error body ({"errors":[{"code":..,"message":..}]}).
std::string RegistryErrorText(const std::string& body) {
  auto j = json_util::Parse(body, "registry error");
  if (!j.ok() || !j->is_object()) {
    return "";
  }
  auto errors = j->find("errors");
  if (errors == j->end() || !errors->is_array() || errors->empty()) {
    return "";
  }
  const auto& e = (*errors)[0];
  if (!e.is_object()) {
    return "";
  }
  std::string code = json_util::OptionalString(e, "code", "").value_or("");
  std::string message = json_util::OptionalString(e, "message", "").value_or("");
  return absl::StrCat(" (", code, code.empty() || message.empty() ? "" : ": ", message, ")");
}

bool IsTransientStatus(long status) { return status == 429 || (status >= 500 && status <= 599); }

bool IsTransientError(const absl::Status& s) {
  return absl::IsUnavailable(s) || absl::IsDeadlineExceeded(s);
}

}  // namespace

struct RegistryClient::AuthState {
  enum class Kind { kBasic, kBearer } kind = Kind::kBasic;
  std::string basic_header;  // "Basic ..."
  std::string token_key;     // TokenCache key for Bearer
};

// One logical request: what to send and what to do with a 2xx body.
struct RegistryClient::Call {
  std::string accept;
  int64_t max_body_bytes = kMaxManifestBytes;
  std::function<absl::Status(absl::string_view)> sink;
  std::function<std::vector<std::string>()> extra_headers;  // evaluated per attempt (Range)
  std::function<absl::Status(long, const std::multimap<std::string, std::string>&)> on_response_start;
};

RegistryClient::RegistryClient(RegistryClientOptions options)
    : options_(std::move(options)),
      clock_(options_.clock != nullptr ? options_.clock : &real_clock_),
      tokens_(clock_) {}

RegistryClient::~RegistryClient() = default;

RegistryStats RegistryClient::stats() const {
  return RegistryStats{.requests = requests_.load(),
                       .manifest_fetches = manifest_fetches_.load(),
                       .blob_downloads = blob_downloads_.load(),
                       .bytes_downloaded = bytes_downloaded_.load(),
                       .token_fetches = token_fetches_.load(),
                       .retries = retries_.load(),
                       .resumes = resumes_.load()};
}

void RegistryClient::Sleep(absl::Duration d) const {
  if (options_.sleep) {
    options_.sleep(d);
  } else {
    absl::SleepFor(d);
  }
}

std::string RegistryBaseUrl(const std::string& registry,
                            const std::vector<std::string>& insecure_registries) {
  const bool plain =
      IsLoopbackRegistry(registry) ||
      std::find(insecure_registries.begin(), insecure_registries.end(), registry) !=
          insecure_registries.end();
  return absl::StrCat(plain ? "http://" : "https://", registry);
}

std::string RegistryClient::BaseUrl(const std::string& registry) const {
  return RegistryBaseUrl(registry, options_.insecure_registries);
}

absl::StatusOr<std::optional<Credentials>> RegistryClient::CredentialsFor(
    const std::string& registry) {
  if (auto it = options_.credentials.find(registry); it != options_.credentials.end()) {
    return std::optional<Credentials>(it->second);
  }
  if (options_.docker_config_path.empty()) {
    return std::optional<Credentials>();
  }
  return LoadDockerCredentials(options_.docker_config_path, registry);
}

std::optional<std::string> RegistryClient::AuthHeaderFor(const Reference& ref) {
  absl::MutexLock lock(&mu_);
  auto it = auth_.find(absl::StrCat(ref.registry, "/", ref.repository));
  if (it == auth_.end()) {
    return std::nullopt;
  }
  if (it->second->kind == AuthState::Kind::kBasic) {
    return it->second->basic_header;
  }
  auto token = tokens_.Get(it->second->token_key);
  if (!token.has_value()) {
    return std::nullopt;  // expired: the next 401 fetches a new one
  }
  return absl::StrCat("Authorization: Bearer ", *token);
}

absl::StatusOr<std::string> RegistryClient::FetchToken(const Reference& ref,
                                                       const std::string& realm,
                                                       const std::string& service,
                                                       const std::string& scope,
                                                       const std::optional<Credentials>& creds,
                                                       const std::string& cache_key) {
  if (!absl::StartsWith(realm, "https://") && !absl::StartsWith(realm, "http://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("registry ", ref.registry, ": token realm '", realm, "' is not an http(s) URL"));
  }
  if (absl::StartsWith(realm, "http://") && !IsLoopbackRegistry(ref.registry) &&
      !absl::StartsWith(BaseUrl(ref.registry), "http://")) {
    return absl::PermissionDeniedError(absl::StrCat(
        "registry ", ref.registry, ": refusing to send credentials to plain-HTTP token realm ",
        realm));
  }
  std::string url = realm;
  absl::StrAppend(&url, absl::StrContains(realm, '?') ? "&" : "?");
  absl::StrAppend(&url, "service=", QueryEscape(service));
  if (!scope.empty()) {
    absl::StrAppend(&url, "&scope=", QueryEscape(scope));
  }
  HttpRequest req{.url = url, .max_body_bytes = 1 << 20, .stall_timeout = options_.stall_timeout};
  if (creds.has_value()) {
    req.headers.push_back(absl::StrCat(
        "Authorization: Basic ", Base64Encode(absl::StrCat(creds->username, ":", creds->password))));
  }
  ++token_fetches_;
  ++requests_;
  SM_ASSIGN_OR_RETURN(HttpResponse resp, http_.Do(req));
  if (resp.status == 401 || resp.status == 403) {
    return absl::UnauthenticatedError(absl::StrCat(
        "registry ", ref.registry, ": token server ", realm, " refused ",
        creds.has_value() ? absl::StrCat("the credentials of user '", creds->username, "'")
                          : std::string("anonymous access; log in (docker login) first"),
        " (HTTP ", resp.status, ")"));
  }
  if (resp.status != 200) {
    return absl::UnavailableError(absl::StrCat("registry ", ref.registry, ": token server ", realm,
                                               " answered HTTP ", resp.status));
  }
  SM_ASSIGN_OR_RETURN(nlohmann::json j, json_util::Parse(resp.body, "token response"));
  if (!j.is_object()) {
    return absl::InvalidArgumentError("token response: not a JSON object");
  }
  SM_ASSIGN_OR_RETURN(std::string token, json_util::OptionalString(j, "token", "token response"));
  if (token.empty()) {
    SM_ASSIGN_OR_RETURN(token, json_util::OptionalString(j, "access_token", "token response"));
  }
  if (token.empty()) {
    return absl::InvalidArgumentError(absl::StrCat("registry ", ref.registry, ": token response from ",
                                                   realm, " has neither 'token' nor 'access_token'"));
  }
  absl::Duration lifetime = TokenCache::kDefaultLifetime;
  if (auto e = j.find("expires_in"); e != j.end() && e->is_number_integer()) {
    lifetime = absl::Seconds(e->get<int64_t>());
  }
  absl::Time issued = absl::InfinitePast();
  if (auto i = j.find("issued_at"); i != j.end() && i->is_string()) {
    std::string err;
    absl::Time t;
    if (absl::ParseTime(absl::RFC3339_full, i->get<std::string>(), &t, &err)) {
      issued = t;
    }
  }
  tokens_.Put(cache_key, token, lifetime, issued);
  return token;
}

absl::Status RegistryClient::Authenticate(const Reference& ref, const HttpResponse& resp,
                                          bool already_sent_auth) {
  const std::string header = resp.Header("www-authenticate");
  const std::string where = ref.repository.empty()
                                ? ref.registry
                                : absl::StrCat(ref.registry, "/", ref.repository);
  SM_ASSIGN_OR_RETURN(std::optional<Credentials> creds, CredentialsFor(ref.registry));
  if (header.empty()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "registry ", where, " answered 401 Unauthorized without a WWW-Authenticate challenge"));
  }
  auto challenges = ParseWwwAuthenticate(header);
  if (!challenges.ok()) {
    return base::Annotate(challenges.status(), absl::StrCat("registry ", where));
  }
  const AuthChallenge* bearer = nullptr;
  const AuthChallenge* basic = nullptr;
  for (const AuthChallenge& c : *challenges) {
    if (c.scheme == "bearer" && bearer == nullptr) {
      bearer = &c;
    } else if (c.scheme == "basic" && basic == nullptr) {
      basic = &c;
    }
  }
  auto state = std::make_unique<AuthState>();
  if (bearer != nullptr) {
    const std::string realm = bearer->Param("realm");
    if (realm.empty()) {
      return absl::UnauthenticatedError(
          absl::StrCat("registry ", where, ": Bearer challenge without a realm: ", header));
    }
    std::string scope = bearer->Param("scope");
    if (scope.empty() && !ref.repository.empty()) {
      scope = absl::StrCat("repository:", ref.repository, ":pull");
    }
    const std::string service = bearer->Param("service");
    state->kind = AuthState::Kind::kBearer;
    state->token_key = absl::StrCat(realm, "\n", service, "\n", scope, "\n",
                                    creds.has_value() ? creds->username : "");
    if (already_sent_auth && tokens_.Get(state->token_key).has_value()) {
      return absl::UnauthenticatedError(
          absl::StrCat("registry ", where, " rejected our bearer token for scope '", scope, "'",
                       RegistryErrorText(resp.body)));
    }
    SM_RETURN_IF_ERROR(FetchToken(ref, realm, service, scope, creds, state->token_key).status());
  } else if (basic != nullptr) {
    if (!creds.has_value()) {
      return absl::UnauthenticatedError(absl::StrCat(
          "registry ", where, " requires a login (HTTP Basic) and no credentials were found; "
          "run `docker login ", ref.registry, "` or add them to the docker config.json"));
    }
    if (already_sent_auth) {
      return absl::UnauthenticatedError(absl::StrCat("registry ", where,
                                                     " rejected the credentials of user '",
                                                     creds->username, "'"));
    }
    state->kind = AuthState::Kind::kBasic;
    state->basic_header = absl::StrCat(
        "Authorization: Basic ", Base64Encode(absl::StrCat(creds->username, ":", creds->password)));
  } else {
    return absl::UnauthenticatedError(
        absl::StrCat("registry ", where, ": unsupported auth challenge '", header, "'"));
  }
  absl::MutexLock lock(&mu_);
  auth_[absl::StrCat(ref.registry, "/", ref.repository)] = std::move(state);
  return absl::OkStatus();
}

absl::StatusOr<HttpResponse> RegistryClient::Send(const Reference& ref, const std::string& path,
                                                  Call& call) {
  const std::string url = absl::StrCat(BaseUrl(ref.registry), path);
  absl::Duration backoff = options_.initial_backoff;
  bool authenticated_once = false;
  int attempt = 0;
  for (;;) {
    ++attempt;
    HttpRequest req{.url = url,
                    .body_sink = call.sink,
                    .on_response_start = call.on_response_start,
                    .max_body_bytes = call.max_body_bytes,
                    .stall_timeout = options_.stall_timeout};
    if (!call.accept.empty()) {
      req.headers.push_back(absl::StrCat("Accept: ", call.accept));
    }
    if (call.extra_headers) {
      for (std::string& h : call.extra_headers()) {
        req.headers.push_back(std::move(h));
      }
    }
    std::optional<std::string> auth = AuthHeaderFor(ref);
    if (auth.has_value()) {
      req.headers.push_back(*auth);
    }
    ++requests_;
    absl::StatusOr<HttpResponse> resp = http_.Do(req);
    bool transient = false;
    std::string why;
    if (!resp.ok()) {
      if (!IsTransientError(resp.status())) {
        return resp.status();
      }
      transient = true;
      why = std::string(resp.status().message());
    } else if (resp->status == 401 && authenticated_once) {
      // Credentials (or a fresh token) were sent and refused: say which.
      absl::Status why_refused = Authenticate(ref, *resp, /*already_sent_auth=*/true);
      if (!why_refused.ok()) {
        return why_refused;
      }
      return resp;
    } else if (resp->status == 401) {
      // Even if we sent a cached token or header: it may have been revoked or expired early,
      // so learn the challenge afresh (a new token); a second 401 is final.
      SM_RETURN_IF_ERROR(Authenticate(ref, *resp, /*already_sent_auth=*/false));
      authenticated_once = true;
      --attempt;  // the auth round trip is not a failed attempt
      continue;
    } else if (IsTransientStatus(resp->status)) {
      transient = true;
      why = absl::StrCat("GET ", url, ": HTTP ", resp->status, RegistryErrorText(resp->body));
    }
    if (!transient) {
      return resp;
    }
    if (attempt >= options_.max_attempts) {
      return absl::UnavailableError(
          absl::StrCat(why, " (gave up after ", attempt, " attempts)"));
    }
    ++retries_;
    absl::Duration wait = backoff;
    // A rate-limited (429) or overloaded (503) registry may say when to come back; honour it
    // up to a bound, so a hostile header cannot park a pull for hours.
    int retry_after_s = 0;
    if (resp.ok() && absl::SimpleAtoi(resp->Header("retry-after"), &retry_after_s) && retry_after_s > 0) {
      wait = std::max(wait, std::min(absl::Seconds(retry_after_s), kMaxRetryAfter));
    }
    Sleep(wait);
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
}

absl::Status RegistryClient::Ping(const std::string& registry) {
  Reference ref{.registry = registry};
  Call call{.max_body_bytes = 1 << 20};
  SM_ASSIGN_OR_RETURN(HttpResponse resp, Send(ref, "/v2/", call));
  if (resp.status == 200) {
    return absl::OkStatus();
  }
  if (resp.status == 401) {
    return absl::UnauthenticatedError(absl::StrCat("registry ", registry, " rejected our credentials"));
  }
  if (resp.status == 404) {
    return absl::NotFoundError(absl::StrCat(BaseUrl(registry), "/v2/ is not an OCI distribution (v2) registry (HTTP 404)"));
  }
  return absl::UnavailableError(absl::StrCat("registry ", registry, ": /v2/ answered HTTP ", resp.status));
}

absl::StatusOr<ManifestResponse> RegistryClient::FetchManifest(const Reference& ref,
                                                               const std::string& reference,
                                                               const std::optional<Digest>& pinned) {
  ++manifest_fetches_;
  Call call{.accept = media_types::kManifestAccept, .max_body_bytes = kMaxManifestBytes};
  const std::string what = absl::StrCat(ref.registry, "/", ref.repository,
                                        absl::StartsWith(reference, "sha256:") ? "@" : ":", reference);
  auto resp = Send(ref, absl::StrCat("/v2/", ref.repository, "/manifests/", reference), call);
  if (!resp.ok()) {
    return base::Annotate(resp.status(), absl::StrCat("pull manifest ", what));
  }
  switch (resp->status) {
    case 200:
      break;
    case 401:
      return absl::UnauthenticatedError(absl::StrCat("pull manifest ", what,
                                                     ": registry still answers 401 Unauthorized",
                                                     RegistryErrorText(resp->body)));
    case 403:
      return absl::PermissionDeniedError(absl::StrCat("pull manifest ", what, ": access denied (HTTP 403)",
                                                      RegistryErrorText(resp->body)));
    case 404:
      return absl::NotFoundError(absl::StrCat("image ", what, " not found in the registry (HTTP 404",
                                              RegistryErrorText(resp->body), "); check the name and tag"));
    default:
      return absl::UnknownError(absl::StrCat("pull manifest ", what, ": unexpected HTTP ", resp->status,
                                             RegistryErrorText(resp->body)));
  }
  ManifestResponse out{.bytes = std::move(resp->body),
                       .media_type = resp->Header("content-type"),
                       .digest = Digest()};
  out.digest = Sha256Of(out.bytes);
  if (pinned.has_value() && out.digest != *pinned) {
    return absl::DataLossError(absl::StrCat("pull manifest ", what, ": content has digest ",
                                            out.digest.ToString(), ", not the requested one"));
  }
  const std::string served = resp->Header("docker-content-digest");
  if (!served.empty()) {
    auto served_digest = Digest::Parse(served);
    if (served_digest.ok() && *served_digest != out.digest) {
      return absl::DataLossError(absl::StrCat("pull manifest ", what, ": Docker-Content-Digest ", served,
                                              " does not match the content (", out.digest.ToString(), ")"));
    }
  }
  return out;
}

absl::StatusOr<ManifestResponse> RegistryClient::GetManifest(const Reference& ref) {
  return FetchManifest(ref, ref.ManifestReference(), ref.digest);
}

absl::StatusOr<ManifestResponse> RegistryClient::GetManifestByDigest(const Reference& ref,
                                                                     const Digest& digest) {
  return FetchManifest(ref, digest.ToString(), digest);
}

absl::StatusOr<IngestResult> RegistryClient::FetchBlob(const Reference& ref,
                                                       const Descriptor& desc,
                                                       const BlobStore& store,
                                                       const ProgressCallback& progress) {
  if (store.ContainsVerified(desc.digest)) {
    return IngestResult{.path = store.PathFor(desc.digest), .size = desc.size, .already_present = true};
  }
  const std::string what = absl::StrCat("blob ", desc.digest.ToString(), " of ", ref.registry, "/",
                                        ref.repository);
  HttpResponse last;
  int resumes = 0;
  auto ingested = store.Ingest(desc.digest, desc.size, [&](BlobWriter& writer) -> absl::Status {
    ++blob_downloads_;
    Call call;
    call.sink = [&](absl::string_view chunk) -> absl::Status {
      SM_RETURN_IF_ERROR(writer.Write(chunk));
      bytes_downloaded_ += static_cast<int64_t>(chunk.size());
      if (progress) {
        progress(BlobProgress{.digest = desc.digest, .done = writer.written(), .total = desc.size});
      }
      return absl::OkStatus();
    };
    // A retry after a broken transfer resumes with a Range request; a server that answers
    // 200 instead of 206 sends the whole blob again, so the writer starts over.
    call.extra_headers = [&]() -> std::vector<std::string> {
      if (writer.written() == 0) {
        return {};
      }
      return {absl::StrCat("Range: bytes=", writer.written(), "-")};
    };
    call.on_response_start = [&](long status,
                                 const std::multimap<std::string, std::string>& headers) -> absl::Status {
      if (status == 206) {
        auto range = headers.find("content-range");
        const std::string want = absl::StrCat("bytes ", writer.written(), "-");
        if (range == headers.end() || !absl::StartsWith(range->second, want)) {
          return absl::DataLossError(absl::StrCat(
              "pull ", what, ": server resumed at the wrong offset (Content-Range: ",
              range == headers.end() ? "missing" : range->second, ", want ", want, "...)"));
        }
        ++resumes;
        return absl::OkStatus();
      }
      return writer.written() > 0 ? writer.Reset() : absl::OkStatus();
    };
    SM_ASSIGN_OR_RETURN(last, Send(ref, absl::StrCat("/v2/", ref.repository, "/blobs/",
                                                     desc.digest.ToString()),
                                   call));
    switch (last.status) {
      case 200:
      case 206:
        return absl::OkStatus();
      case 401:
        return absl::UnauthenticatedError(absl::StrCat("pull ", what, ": 401 Unauthorized",
                                                       RegistryErrorText(last.body)));
      case 403:
        return absl::PermissionDeniedError(absl::StrCat("pull ", what, ": access denied (HTTP 403)"));
      case 404:
        return absl::NotFoundError(absl::StrCat(what, " not found in the registry (HTTP 404",
                                                RegistryErrorText(last.body), ")"));
      default:
        return absl::UnknownError(absl::StrCat("pull ", what, ": unexpected HTTP ", last.status));
    }
  });
  resumes_ += resumes;
  if (!ingested.ok()) {
    return base::Annotate(ingested.status(), absl::StrCat("pull ", ref.registry, "/", ref.repository));
  }
  return ingested;
}

}  // namespace supermachine::image
