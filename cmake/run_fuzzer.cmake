# Runs one libFuzzer target for a bounded time on a scratch copy of its checked-in corpus.
# DICT (a libFuzzer dictionary) comes as -DDICT=... or, since edgerelay_fuzz_target() does not pass
# one, from the test's EDGERELAY_FUZZ_DICT environment (set by the target's CMakeLists.txt).
if(NOT DICT AND DEFINED ENV{EDGERELAY_FUZZ_DICT})
  set(DICT "$ENV{EDGERELAY_FUZZ_DICT}")
endif()
set(_dict_arg)
if(DICT)
  if(NOT EXISTS ${DICT})
    message(FATAL_ERROR "fuzzer dictionary ${DICT} does not exist")
  endif()
  set(_dict_arg -dict=${DICT})
endif()
file(REMOVE_RECURSE ${WORK})
file(COPY ${CORPUS}/ DESTINATION ${WORK})
execute_process(COMMAND ${FUZZER} -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048
                        -print_final_stats=1 ${_dict_arg} ${WORK}
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "fuzzer ${FUZZER} failed with ${rc}")
endif()
