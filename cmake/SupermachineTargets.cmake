# Helpers every directory uses to declare targets the same way: project warnings, sanitizers,
# and tests registered with the right ctest label.
include_guard(GLOBAL)
include(GoogleTest)

# -Wno-missing-field-initializers: GCC 12 warns on designated initializers that rely on
# member defaults ({.argv = ...}), which is exactly how our option structs are meant to be used.
set(SM_WARNING_FLAGS -Wall -Wextra -Wpedantic -Wno-unused-parameter -Wno-missing-field-initializers)
if(SM_WERROR)
  list(APPEND SM_WARNING_FLAGS -Werror)
endif()

if(SM_SANITIZE)
  # Applied globally so gtest/gmock templates instantiated in our TUs are instrumented too.
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
endif()

# sm_project_target(<target>): project warnings (-Werror) on a target we own. Generated code
# (protobuf) is built without it; see proto/CMakeLists.txt.
function(sm_project_target target)
  target_compile_options(${target} PRIVATE ${SM_WARNING_FLAGS})
endfunction()

# sm_add_unit_test(<name> SOURCES <files...> LIBS <targets...>)
# A GoogleTest binary whose tests run natively under the `unit` label (and in the ASan build).
function(sm_add_unit_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  sm_project_target(${name})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
  # Test names are "<binary>.<Suite>.<Test>", so `ctest -R image_` selects a binary's tests.
  gtest_discover_tests(${name}
    DISCOVERY_MODE PRE_TEST
    TEST_PREFIX "${name}."
    PROPERTIES LABELS unit TIMEOUT 300)
endfunction()

# sm_add_integration_test(<name> SOURCES <files...> LIBS <targets...>)
# Native tests that start real local peers (docker-registry, crun...) on loopback.
# Not part of the sanitizer build: they need the peers installed, which setup.sh does.
function(sm_add_integration_test name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS" ${ARGN})
  if(SM_ONLY_UNIT)
    return()
  endif()
  add_executable(${name} ${ARG_SOURCES})
  sm_project_target(${name})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gmock GTest::gtest_main)
  gtest_discover_tests(${name}
    DISCOVERY_MODE PRE_TEST
    TEST_PREFIX "${name}."
    PROPERTIES LABELS integration TIMEOUT 600)
endfunction()

# sm_add_lab_test(<name> TIMEOUT <s> COMMAND <cmd...>)
# A test that boots guests. It always goes through tests/lab/run, which runs the command
# directly on hardware KVM and inside the emulated KVM lab on PVM hosts. It never skips:
# if the lab cannot run, the test fails with the reason.
function(sm_add_lab_test name)
  cmake_parse_arguments(ARG "" "TIMEOUT" "COMMAND" ${ARGN})
  if(SM_ONLY_UNIT)
    return()
  endif()
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 900)
  endif()
  # tests/lab/run re-runs once when no status comes back (a wedged emulated L1 looks like a
  # timeout), so each attempt gets under half of ctest's limit and both fit inside it.
  math(EXPR run_timeout "${ARG_TIMEOUT} / 2 - 30")
  add_test(NAME ${name}
    COMMAND ${PROJECT_SOURCE_DIR}/tests/lab/run --timeout ${run_timeout} -- ${ARG_COMMAND})
  set_tests_properties(${name} PROPERTIES LABELS lab TIMEOUT ${ARG_TIMEOUT} RUN_SERIAL TRUE)
endfunction()

# sm_add_fuzz_target(<name> SOURCES <files...> LIBS <targets...> CORPUS <dir>)
# The source defines LLVMFuzzerTestOneInput. With SM_FUZZ=ON (clang) it links libFuzzer for
# real campaigns (tests/fuzz/run_long.sh). Otherwise it links tests/fuzz/replay_main.cc and a `unit`
# test replays the seed corpus, so every seed stays a regression test in every build.
option(SM_FUZZ "Build fuzz targets with libFuzzer (needs clang)" OFF)
if(SM_FUZZ)
  # Coverage instrumentation for everything we compile, not only the fuzz target's own file:
  # the code under test lives in the libraries, and without it libFuzzer gets no feedback.
  add_compile_options(-fsanitize=fuzzer-no-link)
endif()
function(sm_add_fuzz_target name)
  cmake_parse_arguments(ARG "" "CORPUS" "SOURCES;LIBS" ${ARGN})
  add_executable(${name} ${ARG_SOURCES})
  sm_project_target(${name})
  target_link_libraries(${name} PRIVATE ${ARG_LIBS})
  if(SM_FUZZ)
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  else()
    target_sources(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests/fuzz/replay_main.cc)
    add_test(NAME ${name}_corpus COMMAND ${name} ${ARG_CORPUS})
    set_tests_properties(${name}_corpus PROPERTIES LABELS unit TIMEOUT 300)
  endif()
endfunction()
