# Test helpers shared by every tests/ subfolder.
include(GoogleTest)

# edgerelay_unit_test(NAME n SOURCES a.cpp ... LIBS lib ... [LABEL l] [NETNS]): a GoogleTest binary
# labelled `unit` (or LABEL); NETNS runs it in a private network namespace.
function(edgerelay_unit_test)
  cmake_parse_arguments(T "NETNS" "NAME;LABEL" "SOURCES;LIBS" ${ARGN})
  if(NOT T_LABEL)
    set(T_LABEL unit)
  endif()
  if(T_NETNS)
    # Runs in a private network namespace when permitted (tests/integration/netns_main.cpp).
    add_executable(${T_NAME} ${T_SOURCES} ${PROJECT_SOURCE_DIR}/tests/integration/netns_main.cpp)
    target_link_libraries(${T_NAME} PRIVATE GTest::gtest)
  else()
    add_executable(${T_NAME} ${T_SOURCES})
    target_link_libraries(${T_NAME} PRIVATE GTest::gtest_main)
  endif()
  target_include_directories(${T_NAME} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${T_NAME} PRIVATE ${T_LIBS} GTest::gtest edgerelay_flags)
  gtest_discover_tests(${T_NAME} DISCOVERY_MODE PRE_TEST DISCOVERY_TIMEOUT 60
    PROPERTIES LABELS ${T_LABEL} TIMEOUT 300)
endfunction()

# edgerelay_fuzz_target(NAME n SOURCE f.cpp LIBS ... CORPUS dir [DICT file] [SECONDS s]): a libFuzzer
# target when EDGERELAY_FUZZ is on (clang), run for SECONDS on a copy of its corpus with its
# dictionary, else a replay binary that runs every corpus file once. Either way CTest runs it under
# the label `fuzz`. Its crash-regression folder tests/fuzz/regressions/<n> (inputs that once broke
# it, tests/fuzz/regressions/README.md), when present, is replayed as the test <n>_regressions in
# both builds. Every target is listed in fuzz_targets.txt in the build folder for scripts/fuzz.sh.
set(EDGERELAY_FUZZ_MANIFEST ${CMAKE_BINARY_DIR}/fuzz_targets.txt)
file(WRITE ${EDGERELAY_FUZZ_MANIFEST} "# name|binary|corpus|dictionary (may be empty)|regressions, for scripts/fuzz.sh\n")

function(edgerelay_fuzz_target)
  cmake_parse_arguments(F "" "NAME;SOURCE;CORPUS;DICT;SECONDS" "LIBS" ${ARGN})
  if(NOT F_SECONDS)
    set(F_SECONDS 20)
  endif()
  if(F_DICT AND NOT EXISTS ${F_DICT})
    message(FATAL_ERROR "fuzz target ${F_NAME}: dictionary ${F_DICT} does not exist")
  endif()
  set(_regressions ${PROJECT_SOURCE_DIR}/tests/fuzz/regressions/${F_NAME})
  add_executable(${F_NAME} ${F_SOURCE})
  target_include_directories(${F_NAME} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${F_NAME} PRIVATE ${F_LIBS} edgerelay_flags)
  if(EDGERELAY_FUZZ)
    target_compile_options(${F_NAME} PRIVATE -fsanitize=fuzzer)
    target_link_options(${F_NAME} PRIVATE -fsanitize=fuzzer)
    # Work on a copy so CI never writes into the checked-in corpus.
    set(_work ${CMAKE_CURRENT_BINARY_DIR}/${F_NAME}_corpus)
    add_test(NAME ${F_NAME}
      COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=1
              ${CMAKE_COMMAND} -DFUZZER=$<TARGET_FILE:${F_NAME}> -DCORPUS=${F_CORPUS} -DWORK=${_work}
              -DSECONDS=${F_SECONDS} -DDICT=${F_DICT} -P ${PROJECT_SOURCE_DIR}/cmake/run_fuzzer.cmake)
    if(EXISTS ${_regressions})
      add_test(NAME ${F_NAME}_regressions
        COMMAND ${CMAKE_COMMAND} -E env ASAN_OPTIONS=detect_leaks=1
                ${CMAKE_COMMAND} -DFUZZER=$<TARGET_FILE:${F_NAME}> -DDIR=${_regressions}
                -P ${PROJECT_SOURCE_DIR}/cmake/replay_fuzz_regressions.cmake)
    endif()
  else()
    target_sources(${F_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/tests/fuzz/replay_main.cpp)
    add_test(NAME ${F_NAME} COMMAND ${F_NAME} ${F_CORPUS})
    if(EXISTS ${_regressions})
      add_test(NAME ${F_NAME}_regressions COMMAND ${F_NAME} ${_regressions})
    endif()
  endif()
  set_tests_properties(${F_NAME} PROPERTIES LABELS fuzz TIMEOUT 600)
  if(EXISTS ${_regressions})
    # A regression that hangs again fails here rather than at the suite's time limit.
    set_tests_properties(${F_NAME}_regressions PROPERTIES LABELS fuzz TIMEOUT 120)
  endif()
  file(APPEND ${EDGERELAY_FUZZ_MANIFEST}
       "${F_NAME}|${CMAKE_CURRENT_BINARY_DIR}/${F_NAME}|${F_CORPUS}|${F_DICT}|${_regressions}\n")
endfunction()
