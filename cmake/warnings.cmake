# Project-wide compile flags: one interface target every edgerelay target links.
add_library(edgerelay_flags INTERFACE)
target_compile_options(edgerelay_flags INTERFACE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
  -Wold-style-cast -Wcast-align -Woverloaded-virtual -Wimplicit-fallthrough)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
  # GCC 12 false positives: Asio's coroutine frame allocator as mismatched new/delete, and
  # std::string copies at -O3 as overlapping memcpy (GCC bug 105329).
  target_compile_options(edgerelay_flags INTERFACE -Wno-mismatched-new-delete -Wno-restrict)
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
