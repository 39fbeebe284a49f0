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

# edgerelay_fuzz_target(NAME n SOURCE f.cpp LIBS ... CORPUS dir): a libFuzzer target when
# EDGERELAY_FUZZ is on (clang), else a replay binary that runs every corpus file once. Either way
# CTest runs it under the label `fuzz`.
function(edgerelay_fuzz_target)
  cmake_parse_arguments(F "" "NAME;SOURCE;CORPUS;SECONDS" "LIBS" ${ARGN})
  if(NOT F_SECONDS)
    set(F_SECONDS 20)
  endif()
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
              -DSECONDS=${F_SECONDS} -P ${PROJECT_SOURCE_DIR}/cmake/run_fuzzer.cmake)
  else()
    target_sources(${F_NAME} PRIVATE ${PROJECT_SOURCE_DIR}/tests/fuzz/replay_main.cpp)
    add_test(NAME ${F_NAME} COMMAND ${F_NAME} ${F_CORPUS})
  endif()
  set_tests_properties(${F_NAME} PROPERTIES LABELS fuzz TIMEOUT 600)
endfunction()
