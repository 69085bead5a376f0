# The command line as a user meets it: exit codes and messages (README "Command line").
# Run by CTest: cmake -DSELECTIVBENCH=... -DSOURCE_DIR=... -DWORK_DIR=... -P test_cli.cmake

file(REMOVE_RECURSE "${WORK_DIR}")
file(MAKE_DIRECTORY "${WORK_DIR}")
set(failures 0)

# check(<name> <exit code> <MATCH|NO_MATCH> <regex> args...): runs the CLI in SOURCE_DIR and checks
# its exit code and whether stdout+stderr match the regex.
function(check name code mode regex)
  execute_process(COMMAND "${SELECTIVBENCH}" ${ARGN}
                  WORKING_DIRECTORY "${SOURCE_DIR}"
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT 120)
  set(all "${out}${err}")
  set(matches FALSE)
  if(all MATCHES "${regex}")
    set(matches TRUE)
  endif()
  if(NOT rc STREQUAL "${code}")
    message(SEND_ERROR "[${name}] exit code ${rc}, expected ${code}\n${all}")
  elseif(mode STREQUAL "MATCH" AND NOT matches)
    message(SEND_ERROR "[${name}] output does not match '${regex}':\n${all}")
  elseif(mode STREQUAL "NO_MATCH" AND matches)
    message(SEND_ERROR "[${name}] output matches '${regex}' (it must not):\n${all}")
  else()
    message(STATUS "[${name}] ok")
  endif()
endfunction()

# expect(<name> <exit code> <regex that stdout+stderr must match> args...)
function(expect name code regex)
  check(${name} ${code} MATCH "${regex}" ${ARGN})
endfunction()

# expect_no(<name> <exit code> <regex that stdout+stderr must NOT match> args...)
function(expect_no name code regex)
  check(${name} ${code} NO_MATCH "${regex}" ${ARGN})
endfunction()

set(Q tasks/quickstart.toml)

expect(version 0 "selectivbench [0-9]+\\.[0-9]+\\.[0-9]+ \\(git ([0-9a-f]+(-dirty)?|unknown), LibTorch"
       --version)
expect(help 0 "grammar.*show.*generate" --help)
expect(no_command 2 "subcommand")
expect(unknown_command 2 "unknown command 'trian'; did you mean 'run'\\?.*commands: grammar" trian)
expect(misspelt_command 2 "unknown command 'reprot'; did you mean 'report'\\?" reprot)
expect(unrelated_command 2 "unknown command 'xyzzy' \\(commands: grammar" xyzzy)
expect(unknown_option 2 "--bogus" grammar ${Q} --bogus)
expect(missing_file 2 "nope.toml" grammar tasks/nope.toml)

expect(grammar_text 0 "states +25" grammar ${Q} --samples 100)
expect(grammar_json 0 "\"string_accept_rate\"" grammar ${Q} --json --samples 100)
expect(grammar_dot 0 "written to" grammar ${Q} --samples 10 --dot "${WORK_DIR}/q.dot")
if(NOT EXISTS "${WORK_DIR}/q.dot")
  message(SEND_ERROR "[grammar_dot] no dot file")
endif()
expect(grammar_sweep_needs_choice 3 "--set grammar.ambiguities=" grammar tasks/task1_complexity.toml)
expect(grammar_sweep_choice 0 "\"states\": 401" grammar tasks/task1_complexity.toml
       --set grammar.ambiguities=20 --json --samples 20)
expect(set_out_of_range 3 "grammar.vocab" grammar ${Q} --set grammar.vocab=99)
expect(set_unknown_key 3 "did you mean 'ambiguities'" grammar ${Q} --set grammar.ambiguties=3)
expect(set_malformed 3 "KEY=VALUE" grammar ${Q} --set grammar.vocab)
expect(seed_option 0 "\"seed\": 5" grammar ${Q} --seed 5 --json --samples 10)

file(WRITE "${WORK_DIR}/typo.toml" "[task]\nname = \"typo\"\n[grammer]\nvocab = 9\n")
expect(file_typo 3 "typo.toml:3.*did you mean 'grammar'" grammar "${WORK_DIR}/typo.toml")
file(WRITE "${WORK_DIR}/empty.toml" "")
expect(empty_task_file 3 "empty.toml.*required: a \\[task\\] table" grammar "${WORK_DIR}/empty.toml")
expect(empty_benchmark_file 3 "empty.toml.*required: a \\[benchmark\\] table"
       run "${WORK_DIR}/empty.toml" --dry-run)
file(WRITE "${WORK_DIR}/syntax.toml" "[task]\nname = \"x\n")
expect(file_syntax 3 "syntax.toml:2" grammar "${WORK_DIR}/syntax.toml")

expect(show_sample 0 "label" show ${Q} --index 3)
expect(show_test_split 0 "test #2" show ${Q} --split test --index 2 --elements 5)
expect(show_index_out_of_range 3 "out of range" show ${Q} --index 999999)
expect(show_bad_split 2 "split" show ${Q} --split valid)

expect(generate 0 "wrote .*10 test samples" generate ${Q} --split test --count 10 --inputs
       --out "${WORK_DIR}/q.sbd")
foreach(f q.sbd q.states.npy q.symbols.npy q.steps.npy q.labels.npy q.lengths.npy
          q.element_start.npy q.inputs.npy)
  if(NOT EXISTS "${WORK_DIR}/${f}")
    message(SEND_ERROR "[generate] missing ${f}")
  endif()
endforeach()
expect(generate_too_many 3 "exceeds test.size" generate ${Q} --split test --count 1000000
       --out "${WORK_DIR}/x.sbd")
expect(generate_unwritable 1 "error:" generate ${Q} --split test --count 2
       --out /proc/selectivbench/x.sbd)

# Small things a user notices. Help shows a flag as a flag (CLI11's negated flags printed
# "--no-throughput{false}"), in every command.
foreach(command grammar show generate run evaluate plugins check-plugin slurm collect report)
  expect_no(help_${command} 0 "{(false|true)}" ${command} --help)
endforeach()

# `plugins` lists the cuda capability only where CUDA can be used, and says why it is missing.
if(TORCH_CUDA)
  expect(plugins_cuda 0 "gla .* step cuda bf16" plugins)
else()
  expect_no(plugins_no_cuda_column 0 "step cuda" plugins)
  expect(plugins_no_cuda 0 "cuda is not listed: this build has no CUDA" plugins)
  expect(plugins_info_no_cuda 0 "cuda yes, but not here \\(this build has no CUDA" plugins info gla)
endif()

# NO_COLOR turns off the colours of the log, which a terminal otherwise gets (script(1) gives the
# command a terminal).
find_program(SCRIPT script)
if(SCRIPT)
  foreach(no_color "" 1)
    execute_process(COMMAND ${CMAKE_COMMAND} -E env TERM=xterm-256color NO_COLOR=${no_color}
                      ${SCRIPT} -qec "${SELECTIVBENCH} generate ${Q} --split test --count 5 --out ${WORK_DIR}/c.sbd --no-npy" /dev/null
                    WORKING_DIRECTORY "${SOURCE_DIR}" RESULT_VARIABLE rc OUTPUT_VARIABLE out TIMEOUT 120)
    string(ASCII 27 escape)
    if(NOT rc EQUAL 0 OR NOT out MATCHES "generated 5 test samples")
      message(SEND_ERROR "[no_color '${no_color}'] exit ${rc}:\n${out}")
    elseif(no_color AND out MATCHES "${escape}\\[")
      message(SEND_ERROR "[no_color] NO_COLOR=1 still colours the log:\n${out}")
    elseif(NOT no_color AND NOT out MATCHES "${escape}\\[")
      message(SEND_ERROR "[colour] a terminal gets no colours (the NO_COLOR check proves nothing):\n${out}")
    else()
      message(STATUS "[no_color '${no_color}'] ok")
    endif()
  endforeach()
else()
  message(SEND_ERROR "[no_color] script(1) not found (bsdutils)")
endif()

# Numbers and names on the command line that used to wrap, saturate or mean "the default".
expect(seed_too_large 2 "--seed: '9223372036854775808' is out of range \\[0, 9223372036854775807\\]"
       grammar ${Q} --seed 9223372036854775808)
expect(seed_negative 2 "--seed: '-3' is not a whole number" grammar ${Q} --seed -3)
expect(epoch_negative 2 "--epoch: '-1' is not a whole number" show ${Q} --epoch -1)
expect(epoch_wraps 2 "--epoch: '18446744073709551616' is out of range" show ${Q} --epoch 18446744073709551616)
expect(threads_too_many 2 "--threads: '100000' is out of range \\[0, 4096\\]" grammar ${Q} --threads 100000)
expect(check_threads_negative 2 "--threads: '-1' is not a whole number" check-plugin gla --threads -1)
expect(device_empty 2 "--device" run configs/quickstart.toml --dry-run --device "")
expect(check_device_empty 2 "--device" check-plugin gla --device "")
expect(device_unknown 2 "--device: 'gpu' is not a device \\(allowed: cpu, cuda, cuda:N\\)"
       check-plugin gla --device gpu)
expect(evaluate_batch_zero 2 "--batch-size: Value 0 not in range" evaluate "${WORK_DIR}" ${Q} --batch-size 0)
expect(evaluate_batch_negative 2 "--batch-size" evaluate "${WORK_DIR}" ${Q} --batch-size -1)

# A plugin folder that every user may write to is named with a warning (anyone could place code
# there); a private one is not.
file(MAKE_DIRECTORY "${WORK_DIR}/open_plugins" "${WORK_DIR}/private_plugins")
file(CHMOD "${WORK_DIR}/open_plugins" DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE
     GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_WRITE WORLD_EXECUTE)
expect(world_writable_plugin_folder 0 "warning: plugin folder .*open_plugins is writable by every user"
       plugins --plugin-path "${WORK_DIR}/open_plugins")
file(CHMOD "${WORK_DIR}/private_plugins" DIRECTORY_PERMISSIONS OWNER_READ OWNER_WRITE OWNER_EXECUTE
     GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
expect_no(private_plugin_folder 0 "warning: plugin folder" plugins --plugin-path "${WORK_DIR}/private_plugins")

# gla_with_plugin_paths(<name> <folder>): a one-run benchmark of gla, WORK_DIR/<name>.toml, whose
# [plugins] paths is <folder>.
function(gla_with_plugin_paths name folder)
  file(WRITE "${WORK_DIR}/${name}.toml" "
[benchmark]
name = \"${name}\"
tasks = [\"${SOURCE_DIR}/tasks/quickstart.toml\"]
models = [\"gla\"]
widths = [16]
layers = [1]
seeds = [1]
learning_rates = [1e-2]
warmups = [2]
[plugins]
paths = [\"${folder}\"]
")
endfunction()

# Listing plugins, describing one and running a benchmark whose [plugins] paths holds other plugins
# open no library but those the run uses: the misbehaving fixture's static constructor leaves a
# marker file when it is opened. Writing its manifest opens it (the marker works).
set(ENV{SB_TEST_LOAD_MARKER} "${WORK_DIR}/opened")
expect(plugins_lists_from_manifests 0 "misbehaving +0\\.0\\.1" plugins --plugin-path "${FIXTURE_DIR}")
expect(plugins_names_missing_manifest 0 "libsb_wrong_abi.so: no manifest"
       plugins --verbose --plugin-path "${FIXTURE_DIR}")
expect(plugins_info_from_manifest 0 "described by +.*libsb_misbehaving.json"
       plugins info misbehaving --plugin-path "${FIXTURE_DIR}")
gla_with_plugin_paths(other_plugins "${FIXTURE_DIR}")
expect(run_opens_only_its_plugins 0 "gla" run "${WORK_DIR}/other_plugins.toml" --dry-run
       --out "${WORK_DIR}/other_out")
if(EXISTS "${WORK_DIR}/opened")
  message(SEND_ERROR "[plugins_open_nothing] listing or a run that does not use it opened the fixture")
endif()
expect(plugins_manifest_writes 0 "manifest.json" plugins manifest "${FIXTURE_DIR}/libsb_misbehaving.so"
       --out "${WORK_DIR}/manifest.json")
if(NOT EXISTS "${WORK_DIR}/opened")
  message(SEND_ERROR "[plugins_marker] opening the fixture left no marker: the check above proves nothing")
endif()
unset(ENV{SB_TEST_LOAD_MARKER})

# A plugin of [plugins] paths that hides a built-in one of the same name is said, naming both.
file(MAKE_DIRECTORY "${WORK_DIR}/shadow")
file(COPY "${PLUGIN_DIR}/libsb_gla.so" "${PLUGIN_DIR}/libsb_gla.json" DESTINATION "${WORK_DIR}/shadow")
gla_with_plugin_paths(shadow shadow)
expect(shadowing_plugin_said 0
       "warning: plugin gla is .*shadow/libsb_gla.so \\(\\[plugins\\] paths\\), which hides .*libsb_gla.so \\(build tree\\)"
       run "${WORK_DIR}/shadow.toml" --dry-run --out "${WORK_DIR}/shadow_out")

# `slurm --device cuda` is checked for its spelling only: the GPUs are on the compute nodes.
expect(slurm_device_elsewhere 0 "sbatch script: " slurm configs/quickstart.toml --device cuda --out "${WORK_DIR}/slurm_out")
expect(slurm_device_misspelt 2 "--device: 'gpu' is not a device" slurm configs/quickstart.toml --device gpu)
