# selectivbench_add_plugin(<name> SOURCES <files...> [OUTPUT_DIRECTORY <dir>] [NO_MANIFEST])
#
# Builds the plugin <name> as libsb_<name>.so: a MODULE library linked against the SDK (headers,
# building blocks, LibTorch), with hidden visibility so that only the C entry point is exported, and
# the build fingerprint the loader checks. Used by the built-in plugins and by third parties through
# find_package(SelectivBench).
#
# Beside it goes its manifest, libsb_<name>.json (`selectivbench plugins manifest`): what
# `selectivbench plugins` lists and the loader checks before it opens the library, so that listing
# plugins runs none of their code. NO_MANIFEST leaves it out (test fixtures the loader must refuse).
#
# selectivbench_install_plugin(<name> DESTINATION <dir>)
#
# Installs libsb_<name>.so and writes its manifest again from the installed file: installing
# rewrites the library's RPATH, which the manifest's checksum covers.
#
# selectivbench_add_plugin_test(<name>)
#
# Registers `selectivbench check-plugin` on the plugin with CTest.

function(selectivbench_add_plugin name)
  cmake_parse_arguments(ARG "NO_MANIFEST" "OUTPUT_DIRECTORY" "SOURCES" ${ARGN})
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
  if(NOT ARG_NO_MANIFEST)
    _selectivbench_executable(exe exe_dependency)
    set(manifest ${ARG_OUTPUT_DIRECTORY}/libsb_${name}.json)
    add_custom_command(OUTPUT ${manifest}
      COMMAND ${exe} plugins manifest $<TARGET_FILE:${target}> --out ${manifest}
      DEPENDS ${target} ${exe_dependency}
      COMMENT "Writing the manifest of plugin ${name}"
      VERBATIM)
    add_custom_target(${target}_manifest ALL DEPENDS ${manifest})
  endif()
endfunction()

function(selectivbench_install_plugin name)
  cmake_parse_arguments(ARG "" "DESTINATION" "" ${ARGN})
  if(NOT TARGET sb_${name} OR NOT ARG_DESTINATION)
    message(FATAL_ERROR "selectivbench_install_plugin(${name} DESTINATION <dir>): no plugin target "
                        "sb_${name} or no DESTINATION")
  endif()
  install(TARGETS sb_${name} LIBRARY DESTINATION ${ARG_DESTINATION})
  _selectivbench_executable(exe exe_dependency)
  set(dest ${ARG_DESTINATION})
  set(code [=[
    set(library "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/@dest@/libsb_@name@.so")
    message(STATUS "Writing the manifest of: ${library}")
    execute_process(COMMAND "@exe@" plugins manifest "${library}"
                    RESULT_VARIABLE rc OUTPUT_QUIET ERROR_VARIABLE err)
    if(NOT rc EQUAL 0)
      message(FATAL_ERROR "selectivbench plugins manifest ${library} failed: ${err}")
    endif()
  ]=])
  string(CONFIGURE "${code}" code @ONLY)
  install(CODE "${code}")
endfunction()

# The selectivbench that writes manifests: the one being built, or the installed package's.
function(_selectivbench_executable out_exe out_dependency)
  if(TARGET selectivbench)
    set(${out_exe} $<TARGET_FILE:selectivbench> PARENT_SCOPE)
    set(${out_dependency} selectivbench PARENT_SCOPE)
  else()
    set(${out_exe} ${SELECTIVBENCH_EXECUTABLE} PARENT_SCOPE)
    set(${out_dependency} ${SELECTIVBENCH_EXECUTABLE} PARENT_SCOPE)
  endif()
endfunction()

function(selectivbench_add_plugin_test name)
  if(NOT TARGET sb_${name})
    message(FATAL_ERROR "selectivbench_add_plugin_test: no plugin target sb_${name}")
  endif()
  _selectivbench_executable(exe unused)
  # One thread and no throughput line: CTest runs tests side by side, and timing belongs in bench/.
  add_test(NAME check_plugin_${name}
           COMMAND ${exe} check-plugin $<TARGET_FILE:sb_${name}> --threads 1 --no-throughput)
endfunction()
