# selectivbench_add_plugin(<name> SOURCES <files...>)
#
# Builds the plugin <name> as libsb_<name>.so: a MODULE library linked against the SDK (headers,
# building blocks, LibTorch), with hidden visibility so that only the C entry point is exported, and
# the build fingerprint the loader checks. Used by the built-in plugins and by third parties through
# find_package(SelectivBench).
#
# selectivbench_add_plugin_test(<name>)
#
# Registers `selectivbench check-plugin` on the plugin with CTest.

function(selectivbench_add_plugin name)
  cmake_parse_arguments(ARG "" "OUTPUT_DIRECTORY" "SOURCES" ${ARGN})
  if(NOT name MATCHES "^[a-z][a-z0-9_]*$")
    message(FATAL_ERROR "selectivbench_add_plugin: '${name}' is not lower_snake_case")
  endif()
  if(NOT ARG_SOURCES)
    message(FATAL_ERROR "selectivbench_add_plugin(${name}): no SOURCES")
  endif()
  set(target sb_${name})
  add_library(${target} MODULE ${ARG_SOURCES})
  if(NOT ARG_OUTPUT_DIRECTORY)
    if(DEFINED SELECTIVBENCH_PLUGIN_OUTPUT_DIR)
      set(ARG_OUTPUT_DIRECTORY ${SELECTIVBENCH_PLUGIN_OUTPUT_DIR})
    else()
      set(ARG_OUTPUT_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR})
    endif()
  endif()
  set_target_properties(${target} PROPERTIES
    PREFIX "lib"
    OUTPUT_NAME "sb_${name}"
    CXX_STANDARD 20
    CXX_STANDARD_REQUIRED ON
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON
    LIBRARY_OUTPUT_DIRECTORY ${ARG_OUTPUT_DIRECTORY})
  target_link_libraries(${target} PRIVATE SelectivBench::sdk)
  # Everything but the entry point stays inside the plugin, LibTorch's symbols included.
  target_link_options(${target} PRIVATE -Wl,--exclude-libs,ALL -Wl,--no-undefined)
endfunction()

function(selectivbench_add_plugin_test name)
  if(NOT TARGET sb_${name})
    message(FATAL_ERROR "selectivbench_add_plugin_test: no plugin target sb_${name}")
  endif()
  if(TARGET selectivbench)
    set(exe $<TARGET_FILE:selectivbench>)
  else()
    set(exe ${SELECTIVBENCH_EXECUTABLE})
  endif()
  # One thread and no throughput line: CTest runs tests side by side, and timing belongs in bench/.
  add_test(NAME check_plugin_${name}
           COMMAND ${exe} check-plugin $<TARGET_FILE:sb_${name}> --threads 1 --no-throughput)
endfunction()
