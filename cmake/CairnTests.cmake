# Every tests/test_*.c is one ctest program, linked against the static library
# (so it can reach internal symbols through src/ headers).
set(CAIRN_VECTORS_DIR "${CMAKE_SOURCE_DIR}/../shared/vectors" CACHE PATH
    "The public corpus of real files (skipped when absent)")
set(CAIRN_PYTHON "/usr/bin/python3" CACHE FILEPATH "Python with Debian's numpy")
# The fuzz build (CAIRN_FUZZ) runs only the fuzz targets; the unit tests run
# in the sanitizer build.
if(NOT CAIRN_FUZZ)
file(GLOB CAIRN_TESTS_SRC CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/test_*.c)
foreach(src ${CAIRN_TESTS_SRC})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_compile_options(${name} PRIVATE ${CAIRN_WARNINGS})
  target_compile_definitions(${name} PRIVATE _GNU_SOURCE)
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR}/tests)
  target_link_libraries(${name} PRIVATE cairn_static ${CAIRN_LINK_DEPS} m)
  if(name STREQUAL "test_ckpt_crash")
    # Route the library's write/fsync/rename/unlink through the test's kill switch.
    target_link_options(${name} PRIVATE -Wl,--wrap=write,--wrap=fsync,--wrap=rename,--wrap=renameat2,--wrap=linkat,--wrap=unlink)
  endif()
  if(name STREQUAL "test_durability")
    # Lets the test refuse linkat(AT_EMPTY_PATH) as kernels do for processes without
    # CAP_DAC_READ_SEARCH (kernels from 6.10 allow it for the file's opener).
    target_link_options(${name} PRIVATE -Wl,--wrap=linkat)
  endif()
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES
    ENVIRONMENT "CAIRN_VECTORS=${CAIRN_VECTORS_DIR};CAIRN_PYTHON=${CAIRN_PYTHON};CAIRN_CLI=$<TARGET_FILE:cairn_cli>;CAIRN_TEST_TMP=${CMAKE_BINARY_DIR}/test-tmp;CAIRN_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
    SKIP_RETURN_CODE 77 TIMEOUT 600)
endforeach()

# The S3 client once more on s3rver (npm), the harness's fallback when the
# machine has no moto_server: the test leaves out, saying so, what s3rver
# lacks (tests/s3util.h, server_has). test_s3_archive and test_s3_ckpt pass
# there too (CAIRN_S3_SERVER=s3rver by hand; 22 s and 60 s more).
foreach(name test_s3)
  add_test(NAME ${name}_s3rver COMMAND ${name})
  set_tests_properties(${name}_s3rver PROPERTIES
    ENVIRONMENT "CAIRN_S3_SERVER=s3rver;CAIRN_PYTHON=${CAIRN_PYTHON};CAIRN_CLI=$<TARGET_FILE:cairn_cli>;CAIRN_TEST_TMP=${CMAKE_BINARY_DIR}/test-tmp;CAIRN_SOURCE_DIR=${CMAKE_SOURCE_DIR}"
    SKIP_RETURN_CODE 77 TIMEOUT 600)
endforeach()

# Distributed checkpoints (libcairn_mpi): programs run under mpirun by the
# tests/mpi/*.sh drivers, on shared memory and loopback only.
if(MPI_C_FOUND)
  file(GLOB CAIRN_MPI_TEST_SRC CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/mpi/*.c)
  foreach(src ${CAIRN_MPI_TEST_SRC})
    get_filename_component(name ${src} NAME_WE)
    add_executable(${name} ${src})
    target_compile_options(${name} PRIVATE ${CAIRN_WARNINGS})
    target_compile_definitions(${name} PRIVATE _GNU_SOURCE)
    target_link_libraries(${name} PRIVATE cairn_mpi_static ${CAIRN_LINK_DEPS} m)
  endforeach()
  file(GLOB CAIRN_MPI_SH_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/mpi/*.sh)
  foreach(src ${CAIRN_MPI_SH_TESTS})
    get_filename_component(name ${src} NAME_WE)
    add_test(NAME ${name} COMMAND bash ${src})
    set_tests_properties(${name} PROPERTIES
      ENVIRONMENT "CAIRN_CLI=$<TARGET_FILE:cairn_cli>;CAIRN_TEST_TMP=${CMAKE_BINARY_DIR}/test-tmp;CAIRN_BUILD_DIR=${CMAKE_BINARY_DIR};CAIRN_SOURCE_DIR=${CMAKE_SOURCE_DIR};CAIRN_MPIEXEC=${MPIEXEC_EXECUTABLE}"
      SKIP_RETURN_CODE 77 TIMEOUT 600)
  endforeach()
endif()

# Shell-level tests of the CLI contract.
file(GLOB CAIRN_SH_TESTS CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/tests/cli_*.sh)
foreach(src ${CAIRN_SH_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_test(NAME ${name} COMMAND bash ${src})
  set_tests_properties(${name} PROPERTIES
    ENVIRONMENT "CAIRN_CLI=$<TARGET_FILE:cairn_cli>;CAIRN_PYTHON=${CAIRN_PYTHON};CAIRN_TEST_TMP=${CMAKE_BINARY_DIR}/test-tmp;CAIRN_VECTORS=${CAIRN_VECTORS_DIR};CAIRN_LIB=$<TARGET_FILE:cairn>;CAIRN_BUILD_DIR=${CMAKE_BINARY_DIR};CAIRN_SOURCE_DIR=${CMAKE_SOURCE_DIR};CAIRN_SANITIZE=$<BOOL:${CAIRN_SANITIZE}>"
    SKIP_RETURN_CODE 77 TIMEOUT 600)
endforeach()

# The Python package against an ASan/UBSan build of itself and of libcairn
# (the full pytest suite runs in `make test-python` on the Release build).
if(CAIRN_SANITIZE)
  add_test(NAME python_asan COMMAND bash ${CMAKE_SOURCE_DIR}/bindings/python/tests/run_asan.sh)
  set_tests_properties(python_asan PROPERTIES
    ENVIRONMENT "CAIRN_BUILD_DIR=${CMAKE_BINARY_DIR};CAIRN_SOURCE_DIR=${CMAKE_SOURCE_DIR};CAIRN_PYTHON=${CAIRN_PYTHON};CAIRN_VECTORS=${CAIRN_VECTORS_DIR}"
    SKIP_RETURN_CODE 77 TIMEOUT 600)
endif()
endif()

# libFuzzer targets: built only with clang and CAIRN_FUZZ=ON; each runs for a
# short fixed budget as a test, starting from its seed corpus.
if(CAIRN_FUZZ)
  set(CAIRN_FUZZ_SECONDS 20 CACHE STRING "Seconds each fuzz target runs in ctest")
  file(GLOB CAIRN_FUZZ_SRC CONFIGURE_DEPENDS ${CMAKE_SOURCE_DIR}/fuzz/fuzz_*.c)
  foreach(src ${CAIRN_FUZZ_SRC})
    get_filename_component(name ${src} NAME_WE)
    add_executable(${name} ${src} $<TARGET_OBJECTS:cairn_objects>)
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR}/src ${CMAKE_SOURCE_DIR}/include)
    target_link_libraries(${name} PRIVATE ${CAIRN_LINK_DEPS} m)
    set(corpus ${CMAKE_SOURCE_DIR}/fuzz/corpus/${name})
    set(work ${CMAKE_BINARY_DIR}/fuzz-work/${name})
    add_test(NAME ${name}
      COMMAND bash -c "mkdir -p '${work}' && exec $<TARGET_FILE:${name}> -max_total_time=${CAIRN_FUZZ_SECONDS} -malloc_limit_mb=256 -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 '${work}' '${corpus}'")
    set_tests_properties(${name} PROPERTIES TIMEOUT 600 LABELS fuzz)
  endforeach()
endif()
