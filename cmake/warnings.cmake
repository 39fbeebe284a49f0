# Project-wide compile flags: one interface target every edgerelay target links.
add_library(edgerelay_flags INTERFACE)
target_compile_options(edgerelay_flags INTERFACE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
  -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wimplicit-fallthrough)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # GCC 12 reports Asio's coroutine frame allocator as mismatched new/delete (a false positive).
  target_compile_options(edgerelay_flags INTERFACE -Wno-mismatched-new-delete)
endif()
if(EDGERELAY_WERROR)
  target_compile_options(edgerelay_flags INTERFACE -Werror)
endif()
if(EDGERELAY_SANITIZE)
  set(_san -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
  if(CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    # clang 14 cannot compile coroutines with -fsanitize=function (llvm#49689).
    list(APPEND _san -fno-sanitize=function)
  endif()
  target_compile_options(edgerelay_flags INTERFACE ${_san})
  target_link_options(edgerelay_flags INTERFACE ${_san})
endif()
