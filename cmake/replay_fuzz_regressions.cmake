# Runs a libFuzzer binary once on every file of a crash-regression folder (files as arguments: each
# is executed once, nothing is fuzzed or written). An empty folder fails, as replay_main.cpp does.
file(GLOB_RECURSE _inputs LIST_DIRECTORIES false ${DIR}/*)
if(NOT _inputs)
  message(FATAL_ERROR "no regression inputs in ${DIR}")
endif()
list(LENGTH _inputs _count)
message(STATUS "replaying ${_count} regression input(s) from ${DIR}")
execute_process(COMMAND ${FUZZER} -timeout=10 -rss_limit_mb=2048 ${_inputs} RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fuzzer ${FUZZER} failed with ${rc} on the regression inputs of ${DIR}")
endif()
