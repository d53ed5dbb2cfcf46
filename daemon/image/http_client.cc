// File: http_client.cc
// libcurl easy-handle plumbing.
#include "daemon/image/http_client.h"

#include <curl/curl.h>

#include <optional>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace supermachine::image {
namespace {

constexpr size_t kMaxErrorBody = 64 << 10;

struct Transfer {
  const HttpRequest* request = nullptr;
  HttpResponse* response = nullptr;
  long current_status = 0;
  absl::Status sink_status;
  bool body_too_large = false;
};

size_t OnHeader(char* data, size_t size, size_t nitems, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * nitems;
  absl::string_view line(data, n);
  line = absl::StripTrailingAsciiWhitespace(line);
  if (absl::StartsWith(line, "HTTP/")) {
    // A new response (first, after a redirect, or after 100-continue): start over.
    t->response->headers.clear();
    std::vector<absl::string_view> parts;
    const size_t sp = line.find(' ');
    long status = 0;
    if (sp != absl::string_view::npos) {
      absl::string_view code = line.substr(sp + 1, 3);
      int v = 0;
      if (absl::SimpleAtoi(code, &v)) {
        status = v;
      }
    }
    t->current_status = status;
    return n;
  }
  if (line.empty()) {
    // End of one response's headers; redirects and 1xx are followed by another response.
    const bool final_2xx = t->current_status >= 200 && t->current_status < 300;
    if (final_2xx && t->request->on_response_start) {
      t->sink_status = t->request->on_response_start(t->current_status, t->response->headers);
      if (!t->sink_status.ok()) {
        return 0;  // aborts the transfer
      }
    }
    return n;
  }
  const size_t colon = line.find(':');
  if (colon != absl::string_view::npos) {
    t->response->headers.emplace(
        absl::AsciiStrToLower(line.substr(0, colon)),
        std::string(absl::StripAsciiWhitespace(line.substr(colon + 1))));
  }
  return n;
}

size_t OnBody(char* data, size_t size, size_t nmemb, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t n = size * nmemb;
  absl::string_view chunk(data, n);
  const bool ok_status = t->current_status >= 200 && t->current_status < 300;
  if (!ok_status) {
    const size_t room = kMaxErrorBody - std::min(kMaxErrorBody, t->response->body.size());
    t->response->body.append(data, std::min(room, n));
    return n;
  }
  if (t->request->body_sink) {
    t->sink_status = t->request->body_sink(chunk);
    return t->sink_status.ok() ? n : 0;  // 0 aborts the transfer with CURLE_WRITE_ERROR
  }
  if (t->response->body.size() + n > static_cast<size_t>(t->request->max_body_bytes)) {
    t->body_too_large = true;
    return 0;
  }
  t->response->body.append(data, n);
  return n;
}

}  // namespace

std::string HttpResponse::Header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? std::string() : it->second;
}

// curl_easy_init performs curl_global_init on first use; since curl 7.84 (Debian 12 ships
// 7.88) that is thread-safe, so no process-wide init call is needed here.
HttpClient::HttpClient() = default;

HttpClient::~HttpClient() {
  absl::MutexLock lock(&mu_);
  for (void* h : idle_) {
    curl_easy_cleanup(static_cast<CURL*>(h));
  }
}

void* HttpClient::AcquireHandle() {
  {
    absl::MutexLock lock(&mu_);
    if (!idle_.empty()) {
      void* h = idle_.back();
      idle_.pop_back();
      curl_easy_reset(static_cast<CURL*>(h));  // keeps the connection cache
      return h;
    }
  }
  return curl_easy_init();
}

void HttpClient::ReleaseHandle(void* handle) {
  absl::MutexLock lock(&mu_);
  idle_.push_back(handle);
}

absl::StatusOr<HttpResponse> HttpClient::Do(const HttpRequest& request) {
  CURL* curl = static_cast<CURL*>(AcquireHandle());
  if (curl == nullptr) {
    return absl::ResourceExhaustedError("curl_easy_init failed (out of memory?)");
  }
  absl::Cleanup release = [&] { ReleaseHandle(curl); };

  HttpResponse response;
  Transfer t{.request = &request, .response = &response};
  curl_slist* headers = nullptr;
  absl::Cleanup free_headers = [&] { curl_slist_free_all(headers); };
  for (const std::string& h : request.headers) {
    headers = curl_slist_append(headers, h.c_str());
  }
  char error[CURL_ERROR_SIZE] = {0};

  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, request.follow_redirects ? 1L : 0L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &t);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS,
                   static_cast<long>(absl::ToInt64Milliseconds(request.connect_timeout)));
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME,
                   static_cast<long>(std::max<int64_t>(1, absl::ToInt64Seconds(request.stall_timeout))));
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "supermachine/0.1");
  if (request.method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  }

  const CURLcode rc = curl_easy_perform(curl);
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, nullptr);
  if (!t.sink_status.ok()) {
    return t.sink_status;
  }
  if (t.body_too_large) {
    return absl::ResourceExhaustedError(absl::StrCat("GET ", request.url, ": response body larger than ",
                                                     request.max_body_bytes, " bytes"));
  }
  if (rc != CURLE_OK) {
    const std::string why = error[0] != '\0' ? std::string(error) : curl_easy_strerror(rc);
    const std::string msg = absl::StrCat(request.method, " ", request.url, ": ", why);
    if (rc == CURLE_OPERATION_TIMEDOUT) {
      return absl::DeadlineExceededError(msg);
    }
    if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL) {
      return absl::InvalidArgumentError(msg);
    }
    return absl::UnavailableError(msg);
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response.status);
  char* eff = nullptr;
  if (curl_easy_getinfo(curl, CURLINFO_EFFECTIVE_URL, &eff) == CURLE_OK && eff != nullptr) {
    response.effective_url = eff;
  }
  return response;
}

}  // namespace supermachine::image
