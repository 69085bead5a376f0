# Writes OUTPUT, a source file that defines sb::build_git_sha(): the commit the sources are at,
# with "-dirty" when tracked files differ from it, or "unknown" outside a git checkout.
# Run at every build (core/CMakeLists.txt), so a binary never reports a commit it was not built
# from; the file is rewritten only when the text changes, so an unchanged tree recompiles nothing.
# Usage: cmake -DSOURCE_DIR=... -DOUTPUT=... -P GitSha.cmake
execute_process(COMMAND git rev-parse --short=12 HEAD WORKING_DIRECTORY "${SOURCE_DIR}"
                OUTPUT_VARIABLE sha OUTPUT_STRIP_TRAILING_WHITESPACE RESULT_VARIABLE rc ERROR_QUIET)
if(NOT rc EQUAL 0 OR sha STREQUAL "")
  set(sha "unknown")
else()
  # --untracked-files=no: a build folder or a new, unused file in the tree is not a change.
  execute_process(COMMAND git status --porcelain --untracked-files=no WORKING_DIRECTORY "${SOURCE_DIR}"
                  OUTPUT_VARIABLE changes RESULT_VARIABLE rc ERROR_QUIET)
  if(NOT rc EQUAL 0 OR NOT changes STREQUAL "")
    string(APPEND sha "-dirty")
  endif()
endif()
set(text "// Written by cmake/GitSha.cmake at build time.\n#include \"core/util/build_info.hpp\"\n\nconst char* sb::build_git_sha() { return \"${sha}\"; }\n")
if(EXISTS "${OUTPUT}")
  file(READ "${OUTPUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUTPUT}" "${text}")
endif()
