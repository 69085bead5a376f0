# The third-party path (spec sdk.md §4), as a researcher walks it:
#   1. install selectivbench to a fresh prefix;
#   2. configure and build examples/my_gate from its own folder with find_package(SelectivBench);
#   3. with the *installed* binary: list it, run check-plugin on it, train it for a few steps.
# Inputs: BUILD_DIR, SOURCE_DIR, WORK_DIR, TORCH_DIR, GENERATOR.
function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    string(REPLACE ";" " " cmd "${ARGN}")
    message(FATAL_ERROR "failed (${rc}): ${cmd}\n--- stdout\n${out}\n--- stderr\n${err}")
  endif()
  set(last_out "${out}" PARENT_SCOPE)
endfunction()

function(expect_contains text pattern what)
  string(FIND "${text}" "${pattern}" pos)
  if(pos EQUAL -1)
    message(FATAL_ERROR "${what}: expected to find '${pattern}' in:\n${text}")
  endif()
endfunction()

file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})
set(prefix ${WORK_DIR}/prefix)

# 1. Install.
run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
set(exe ${prefix}/bin/selectivbench)
if(NOT EXISTS ${exe})
  message(FATAL_ERROR "no installed binary at ${exe}")
endif()

# 2. Build the example against the installed package (and only it: the build tree is not on the
#    prefix path).
set(launcher "")
find_program(CCACHE ccache)
if(CCACHE)
  set(launcher -DCMAKE_CXX_COMPILER_LAUNCHER=${CCACHE})
endif()
run(${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples/my_gate -B ${WORK_DIR}/my_gate -G ${GENERATOR}
    -DCMAKE_BUILD_TYPE=Release "-DCMAKE_PREFIX_PATH=${prefix}" -DTorch_DIR=${TORCH_DIR} ${launcher})
run(${CMAKE_COMMAND} --build ${WORK_DIR}/my_gate)
set(plugin ${WORK_DIR}/my_gate/libsb_my_gate.so)
if(NOT EXISTS ${plugin})
  message(FATAL_ERROR "the example did not produce ${plugin}")
endif()

# README step 3 ends with CTest in the example's build folder: its check-plugin test must find
# the installed binary (the package's paths once resolved under /usr for any prefix).
run(${CMAKE_CTEST_COMMAND} --test-dir ${WORK_DIR}/my_gate --output-on-failure)
expect_contains("${last_out}" "100% tests passed" "ctest in the example's build folder")
file(READ ${WORK_DIR}/my_gate/CTestTestfile.cmake ctest_file)
expect_contains("${ctest_file}" "${exe}" "the example's test (runs the installed binary)")

# 3a. The installed binary finds its installed plugins and, through --plugin-path, the new one.
run(${exe} plugins --verbose --plugin-path ${WORK_DIR}/my_gate)
expect_contains("${last_out}" "my_gate" "plugins")
expect_contains("${last_out}" "scalar/head" "plugins (taxonomy column of my_gate)")
expect_contains("${last_out}" "${prefix}" "plugins (installed folder)")
expect_contains("${last_out}" "transformer" "plugins (installed built-ins)")
# Every one of them listed from a current manifest: installing wrote them again for the installed
# files, and the example's build wrote its own.
string(FIND "${last_out}" "cannot be used" unusable)
if(NOT unusable EQUAL -1)
  message(FATAL_ERROR "plugins lists files it cannot use (manifests missing or out of date):\n${last_out}")
endif()
if(NOT EXISTS ${WORK_DIR}/my_gate/libsb_my_gate.json)
  message(FATAL_ERROR "the example's build wrote no manifest libsb_my_gate.json")
endif()

# 3b. Conformance, by path and (README step 4) by name through SELECTIVBENCH_PLUGIN_PATH.
run(${exe} check-plugin ${plugin} --no-throughput --threads 1)
expect_contains("${last_out}" "PASSED" "check-plugin")
set(ENV{SELECTIVBENCH_PLUGIN_PATH} ${WORK_DIR}/my_gate)
run(${exe} check-plugin my_gate --no-throughput --threads 1)
expect_contains("${last_out}" "PASSED" "check-plugin by name")
unset(ENV{SELECTIVBENCH_PLUGIN_PATH})

# 3c. The installed binary does not look into the build tree it came from: its built-ins come
#     from the prefix only.
run(${exe} plugins --verbose)
string(FIND "${last_out}" "${BUILD_DIR}/plugins" build_tree)
if(NOT build_tree EQUAL -1)
  message(FATAL_ERROR "the installed binary lists the build tree's plugins:\n${last_out}")
endif()

# 3d. The presets are installed, and found from any folder by their relative paths.
foreach(preset tasks/quickstart.toml configs/quickstart.toml configs/paper/task2.toml)
  if(NOT EXISTS ${prefix}/share/selectivbench/${preset})
    message(FATAL_ERROR "not installed: share/selectivbench/${preset}")
  endif()
endforeach()
execute_process(COMMAND ${exe} grammar tasks/quickstart.toml WORKING_DIRECTORY ${WORK_DIR}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "installed preset tasks/quickstart.toml not found from ${WORK_DIR}:\n${err}")
endif()
execute_process(COMMAND ${exe} run configs/paper/task2.toml --dry-run --device cpu
                        --out ${WORK_DIR}/dry
                WORKING_DIRECTORY ${WORK_DIR} RESULT_VARIABLE rc OUTPUT_VARIABLE out
                ERROR_VARIABLE err)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "installed preset configs/paper/task2.toml: ${rc}\n${out}\n${err}")
endif()

# 3e. A few training steps, the plugin found through SELECTIVBENCH_PLUGIN_PATH, next to gla.
file(WRITE ${WORK_DIR}/bench.toml "
[benchmark]
name = \"out_of_tree\"
tasks = [\"${SOURCE_DIR}/tasks/quickstart.toml\"]
task_set = [\"train.size=64\", \"test.size=16\", \"sequence.length=12\", \"sequence.max_string_length=12\"]
models = [\"my_gate\", \"gla\"]
widths = [16]
layers = [1]
seeds = [1]
learning_rates = [1e-2]
warmups = [2]

[training]
batch_size = 8
max_updates = 6
eval_every = 3

[plugins.my_gate]
gate_normalizer = 8.0
")
set(ENV{SELECTIVBENCH_PLUGIN_PATH} ${WORK_DIR}/my_gate)
run(${exe} run ${WORK_DIR}/bench.toml --out ${WORK_DIR}/out)
expect_contains("${last_out}" "| my_gate |" "run table")
file(GLOB summary ${WORK_DIR}/out/*/my_gate_*/summary.json)
if(NOT summary)
  message(FATAL_ERROR "no summary.json for my_gate under ${WORK_DIR}/out")
endif()
file(READ ${summary} text)
expect_contains("${text}" "\"status\": \"finished\"" "summary.json")
expect_contains("${text}" "\"updates\": 6" "summary.json")
expect_contains("${text}" "libsb_my_gate.so" "summary.json (plugin file)")
message(STATUS "out-of-tree plugin: built, listed, checked and trained with the installed binary")
