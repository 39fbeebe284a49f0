# Runs one libFuzzer target for a bounded time on a scratch copy of its checked-in corpus, with its
# dictionary when edgerelay_fuzz_target() was given one (-DDICT=..., empty for none).
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
