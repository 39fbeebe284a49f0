# edgerelay_module(NAME target [FOLDER dir] SOURCES a.cpp ... [PUBLIC deps...] [PRIVATE deps...])
#
# One folder, one static library with its own include boundary. The folder's headers are linked
# into ${PROJECT_BINARY_DIR}/include/<target>/<path from the repository root>, and that directory is
# the target's only public include path. A file can therefore include a header of another folder
# only when its target links that folder's target: a wrong include fails the build instead of
# slipping past review. FOLDER defaults to the calling CMakeLists.txt's folder; subfolders are
# separate modules, so their headers are not exposed by the parent.
function(edgerelay_module)
  cmake_parse_arguments(M "" "NAME;FOLDER" "SOURCES;PUBLIC;PRIVATE" ${ARGN})
  if(NOT M_FOLDER)
    set(M_FOLDER ${CMAKE_CURRENT_SOURCE_DIR})
  endif()
  set(root ${PROJECT_BINARY_DIR}/include/${M_NAME})
  file(REMOVE_RECURSE ${root})
  file(GLOB headers CONFIGURE_DEPENDS ${M_FOLDER}/*.hpp)
  foreach(h ${headers})
    file(RELATIVE_PATH rel ${PROJECT_SOURCE_DIR} ${h})
    get_filename_component(dir ${root}/${rel} DIRECTORY)
    file(MAKE_DIRECTORY ${dir})
    file(CREATE_LINK ${h} ${root}/${rel} SYMBOLIC)
  endforeach()
  if(M_SOURCES)
    add_library(${M_NAME} STATIC ${M_SOURCES})
    target_include_directories(${M_NAME} PUBLIC ${root})
    target_link_libraries(${M_NAME} PUBLIC ${M_PUBLIC} PRIVATE ${M_PRIVATE} edgerelay_flags)
  else()
    add_library(${M_NAME} INTERFACE)
    target_include_directories(${M_NAME} INTERFACE ${root})
    target_link_libraries(${M_NAME} INTERFACE ${M_PUBLIC})
  endif()
endfunction()
