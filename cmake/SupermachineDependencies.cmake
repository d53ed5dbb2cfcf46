# Finds every third-party library from its Debian 12 package. A missing one stops configure
# with the package to install, so a fresh machine needs only `deploy/setup.sh`.
include_guard(GLOBAL)
find_package(PkgConfig REQUIRED)

# sm_require(<found-var> <what> <debian-package>)
function(sm_require found what package)
  if(NOT ${found})
    message(FATAL_ERROR
      "supermachine needs ${what}: install the Debian package '${package}' "
      "(apt-get install ${package}), or run deploy/setup.sh which installs everything.")
  endif()
endfunction()

find_package(Threads REQUIRED)

find_package(absl CONFIG QUIET)
sm_require(absl_FOUND "Abseil" libabsl-dev)

find_package(Protobuf QUIET)
sm_require(Protobuf_FOUND "Protocol Buffers" libprotobuf-dev)
find_program(SM_PROTOC protoc)
sm_require(SM_PROTOC "the protoc compiler" protobuf-compiler)

find_package(gRPC CONFIG QUIET)
if(NOT gRPC_FOUND)
  # Debian's libgrpc++-dev ships pkg-config files; its CMake config is not always complete.
  pkg_check_modules(GRPCPP QUIET IMPORTED_TARGET grpc++)
  sm_require(GRPCPP_FOUND "gRPC C++" libgrpc++-dev)
  add_library(gRPC::grpc++ ALIAS PkgConfig::GRPCPP)
endif()
find_program(SM_GRPC_CPP_PLUGIN grpc_cpp_plugin)
sm_require(SM_GRPC_CPP_PLUGIN "the gRPC C++ code generator" protobuf-compiler-grpc)

find_package(Boost 1.74 QUIET)
sm_require(Boost_FOUND "Boost (Asio)" libboost-dev)

find_package(CURL QUIET)
sm_require(CURL_FOUND "libcurl" libcurl4-openssl-dev)

find_package(OpenSSL QUIET)
sm_require(OPENSSL_FOUND "OpenSSL" libssl-dev)

find_package(SQLite3 QUIET)
sm_require(SQLite3_FOUND "SQLite 3" libsqlite3-dev)

find_package(prometheus-cpp CONFIG QUIET)
sm_require(prometheus-cpp_FOUND "prometheus-cpp" prometheus-cpp-dev)

find_package(GTest QUIET)
sm_require(GTest_FOUND "GoogleTest" "libgtest-dev libgmock-dev")

pkg_check_modules(LIBARCHIVE QUIET IMPORTED_TARGET libarchive)
sm_require(LIBARCHIVE_FOUND "libarchive" libarchive-dev)

pkg_check_modules(LIBSQUASHFS QUIET IMPORTED_TARGET libsquashfs1)
sm_require(LIBSQUASHFS_FOUND "libsquashfs (squashfs-tools-ng)" libsquashfs-dev)

find_package(nlohmann_json 3.10 QUIET)
sm_require(nlohmann_json_FOUND "nlohmann-json" nlohmann-json3-dev)

find_package(CLI11 CONFIG QUIET)
sm_require(CLI11_FOUND "CLI11" libcli11-dev)

pkg_check_modules(LIBSECCOMP QUIET IMPORTED_TARGET libseccomp)
sm_require(LIBSECCOMP_FOUND "libseccomp" libseccomp-dev)
