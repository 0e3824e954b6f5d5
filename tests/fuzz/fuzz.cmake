# Included by the top-level CMakeLists.txt instead of the whole tree when DRD_FUZZ is on: the
# modules that parse stored or remote bytes, instrumented for libFuzzer (fuzzer-no-link) with ASan
# and UBSan, and one fuzz target per parser (tests/fuzz/CMakeLists.txt). The etcd client, the
# domain folders and the drd binary are not built here.
if(NOT CMAKE_C_COMPILER_ID STREQUAL "Clang")
  message(FATAL_ERROR "DRD_FUZZ needs clang (CC=clang cmake ... -DDRD_FUZZ=ON): libFuzzer comes "
                      "with clang; scripts/fuzz sets this up")
endif()
add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined
                    -fno-omit-frame-pointer -g)
add_link_options(-fsanitize=address,undefined)

add_subdirectory(drd/core)
add_subdirectory(drd/lib/crypto)
add_subdirectory(drd/lib/objstore)
add_subdirectory(drd/lib/archive)
add_subdirectory(drd/lib/json)
add_subdirectory(drd/lib/catalog)
add_subdirectory(drd/lib/repo)
add_subdirectory(drd/lib/boltfile)
add_subdirectory(drd/lib/http)
add_subdirectory(drd/lib/yaml)
add_subdirectory(drd/lib/delta)
add_subdirectory(drd/lib/zstd)
add_subdirectory(policies)
add_subdirectory(tests/fuzz)
