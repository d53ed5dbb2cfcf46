// File: test_pki.cc
#include "tests/integration/remote/test_pki.h"

#include <sys/stat.h>

#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/integration/daemon/daemon_process.h"
#include "worker/base/status_macros.h"

namespace supermachine::test_support {
namespace {

absl::Status Openssl(const std::vector<std::string>& args, const std::string& dir) {
  std::vector<std::string> argv = {"openssl"};
  argv.insert(argv.end(), args.begin(), args.end());
  SM_ASSIGN_OR_RETURN(CommandResult r, RunCommand(argv, dir));
  if (!r.exit.success()) {
    std::string cmd;
    for (const auto& a : argv) {
      absl::StrAppend(&cmd, a, " ");
    }
    return absl::InternalError(absl::StrCat(cmd, r.exit.ToString(), ": ", r.err));
  }
  return absl::OkStatus();
}

absl::Status WriteText(const std::string& path, const std::string& text, mode_t mode) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  if (!out || ::chmod(path.c_str(), mode) != 0) {
    return absl::InternalError("cannot write " + path);
  }
  return absl::OkStatus();
}

// A CA: self-signed, CA:TRUE.
absl::Status MakeCa(const std::string& dir, const std::string& name) {
  return Openssl({"req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                  "-nodes", "-keyout", dir + "/" + name + ".key", "-out",
                  dir + "/" + name + ".pem", "-days", "2", "-subj", "/CN=" + name,
                  "-addext", "basicConstraints=critical,CA:TRUE", "-addext",
                  "keyUsage=critical,keyCertSign,cRLSign"},
                 dir);
}

// A leaf `name` signed by `ca` with the extensions in `ext` (an openssl extfile body).
absl::Status MakeLeaf(const std::string& dir, const std::string& ca, const std::string& name,
                      const std::string& ext) {
  const std::string base = dir + "/" + name;
  SM_RETURN_IF_ERROR(Openssl({"req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                              "-nodes", "-keyout", base + ".key", "-out", base + ".csr", "-subj",
                              "/CN=" + name},
                             dir));
  SM_RETURN_IF_ERROR(WriteText(base + ".ext", ext, 0644));
  return Openssl({"x509", "-req", "-in", base + ".csr", "-CA", dir + "/" + ca + ".pem", "-CAkey",
                  dir + "/" + ca + ".key", "-CAcreateserial", "-out", base + ".pem", "-days", "2",
                  "-extfile", base + ".ext"},
                 dir);
}

}  // namespace

absl::StatusOr<TestPki> TestPki::Create(const std::string& dir) {
  SM_RETURN_IF_ERROR(MakeCa(dir, "ca"));
  SM_RETURN_IF_ERROR(MakeCa(dir, "rogue-ca"));
  SM_RETURN_IF_ERROR(MakeLeaf(dir, "ca", "server",
                              "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                              "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n"));
  SM_RETURN_IF_ERROR(MakeLeaf(dir, "ca", "client",
                              "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"));
  SM_RETURN_IF_ERROR(MakeLeaf(dir, "rogue-ca", "rogue",
                              "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n"));
  TestPki pki;
  pki.ca_cert = ReadWholeFile(dir + "/ca.pem");
  pki.server_cert = ReadWholeFile(dir + "/server.pem");
  pki.server_key = ReadWholeFile(dir + "/server.key");
  pki.client_cert = ReadWholeFile(dir + "/client.pem");
  pki.client_key = ReadWholeFile(dir + "/client.key");
  pki.rogue_cert = ReadWholeFile(dir + "/rogue.pem");
  pki.rogue_key = ReadWholeFile(dir + "/rogue.key");
  if (pki.ca_cert.empty() || pki.client_key.empty() || pki.rogue_key.empty()) {
    return absl::InternalError("openssl succeeded but left no PEM files in " + dir);
  }
  pki.token = "sm-test-token-5f0c9a1e3b7d4c2a8e6f";
  pki.token_file = dir + "/token";
  SM_RETURN_IF_ERROR(WriteText(pki.token_file, pki.token + "\n", 0600));
  return pki;
}

}  // namespace supermachine::test_support
