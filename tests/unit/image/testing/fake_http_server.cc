// File: fake_http_server.cc
// One-thread loopback HTTP server: parse request head, call the handler, write, close.
#include "tests/unit/image/testing/fake_http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace supermachine::image::testing {
namespace {

const char* Reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 206: return "Partial Content";
    case 307: return "Temporary Redirect";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Status";
  }
}

void SendAll(int fd, const char* p, size_t n) {
  while (n > 0) {
    const ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
    if (w <= 0) {
      return;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
}

}  // namespace

FakeHttpServer::FakeHttpServer(Handler handler) : handler_(std::move(handler)) {
  listen_fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  int one = 1;
  ::setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      ::listen(listen_fd_, 16) != 0) {
    std::perror("fake http server bind/listen");
    std::abort();
  }
  socklen_t len = sizeof(addr);
  ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len);
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { Serve(); });
}

FakeHttpServer::~FakeHttpServer() {
  stop_ = true;
  ::shutdown(listen_fd_, SHUT_RDWR);
  thread_.join();
  ::close(listen_fd_);
}

std::vector<std::string> FakeHttpServer::requests() const {
  absl::MutexLock lock(&mu_);
  return requests_;
}

void FakeHttpServer::Serve() {
  while (!stop_) {
    pollfd p{.fd = listen_fd_, .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, 100) <= 0) {
      continue;
    }
    const int fd = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      continue;
    }
    std::string raw;
    char buf[4096];
    while (raw.find("\r\n\r\n") == std::string::npos) {
      const ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        break;
      }
      raw.append(buf, static_cast<size_t>(n));
    }
    FakeRequest req;
    std::vector<std::string> lines = absl::StrSplit(raw.substr(0, raw.find("\r\n\r\n")), "\r\n");
    if (!lines.empty()) {
      std::vector<std::string> first = absl::StrSplit(lines[0], ' ');
      if (first.size() >= 2) {
        req.method = first[0];
        req.target = first[1];
      }
      for (size_t i = 1; i < lines.size(); ++i) {
        const size_t colon = lines[i].find(':');
        if (colon != std::string::npos) {
          req.headers[absl::AsciiStrToLower(lines[i].substr(0, colon))] =
              std::string(absl::StripAsciiWhitespace(lines[i].substr(colon + 1)));
        }
      }
    }
    {
      absl::MutexLock lock(&mu_);
      requests_.push_back(absl::StrCat(req.method, " ", req.target));
    }
    FakeResponse resp = handler_(req);
    std::string head = absl::StrCat("HTTP/1.1 ", resp.status, " ", Reason(resp.status), "\r\n");
    bool has_type = false;
    for (const auto& [k, v] : resp.headers) {
      absl::StrAppend(&head, k, ": ", v, "\r\n");
      has_type = has_type || absl::AsciiStrToLower(k) == "content-type";
    }
    if (!has_type) {
      absl::StrAppend(&head, "Content-Type: application/octet-stream\r\n");
    }
    absl::StrAppend(&head, "Content-Length: ", resp.body.size(), "\r\nConnection: close\r\n\r\n");
    SendAll(fd, head.data(), head.size());
    if (req.method != "HEAD") {
      const size_t n = resp.truncate_at >= 0 ? std::min(resp.body.size(), static_cast<size_t>(resp.truncate_at))
                                             : resp.body.size();
      SendAll(fd, resp.body.data(), n);
    }
    ::shutdown(fd, SHUT_WR);
    // Drain briefly so the client sees a clean close rather than a reset.
    pollfd d{.fd = fd, .events = POLLIN, .revents = 0};
    if (::poll(&d, 1, 50) > 0) {
      ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    }
    ::close(fd);
  }
}

}  // namespace supermachine::image::testing
