# CMake package configuration of netchan's C library.
#
#   find_package(netchan 0.1 REQUIRED)
#   target_link_libraries(app PRIVATE netchan::netchan)         # libnetchan.so
#   target_link_libraries(app PRIVATE netchan::netchan_static)  # libnetchan.a
#
# Installed as <prefix>/lib/cmake/netchan/netchanConfig.cmake by
# scripts/install-c.sh; the prefix is found relative to this file.
get_filename_component(_netchan_prefix "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)
find_package(Threads REQUIRED)

if(NOT TARGET netchan::netchan)
  add_library(netchan::netchan SHARED IMPORTED)
  set_target_properties(netchan::netchan PROPERTIES
    IMPORTED_LOCATION "${_netchan_prefix}/lib/libnetchan.so"
    IMPORTED_SONAME "@SONAME@"
    INTERFACE_INCLUDE_DIRECTORIES "${_netchan_prefix}/include"
    INTERFACE_LINK_LIBRARIES Threads::Threads)
endif()

if(NOT TARGET netchan::netchan_static)
  add_library(netchan::netchan_static STATIC IMPORTED)
  set_target_properties(netchan::netchan_static PROPERTIES
    IMPORTED_LOCATION "${_netchan_prefix}/lib/libnetchan.a"
    INTERFACE_INCLUDE_DIRECTORIES "${_netchan_prefix}/include"
    # What Rust's standard library needs (cargo rustc -- --print native-static-libs).
    INTERFACE_LINK_LIBRARIES "Threads::Threads;dl;m;rt;util;gcc_s")
endif()

set(netchan_INCLUDE_DIRS "${_netchan_prefix}/include")
set(netchan_LIBRARIES netchan::netchan)
set(netchan_FOUND TRUE)
unset(_netchan_prefix)
