// What the binary was built from, for `--version` and run summaries.
#pragma once

namespace sb {

// The commit of the sources at build time: "1a2b3c4d5e6f", "1a2b3c4d5e6f-dirty" when tracked
// files had changes, "unknown" outside a git checkout (written by cmake/GitSha.cmake).
const char* build_git_sha();

}  // namespace sb
