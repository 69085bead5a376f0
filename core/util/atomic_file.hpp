// Atomic file writes: results, caches and checkpoints are never seen half-written.
#pragma once

#include <functional>
#include <ostream>
#include <string>

namespace sb {

// Writes `path` through `write` into a temporary file in the same folder, flushes it to disk and
// renames it over `path`. Creates missing parent folders. On any failure the temporary file is
// removed and std::runtime_error names the path and the cause; `path` is left as it was.
void write_file_atomically(const std::string& path, const std::function<void(std::ostream&)>& write);

// Removes the temporary files that write_file_atomically left in `folder` when its process was
// killed: "NAME.tmp.HOST.PID.N" of this host whose PID no longer runs. Files of live processes and
// of other hosts (a shared folder) are left alone. Returns how many were removed.
int remove_stale_temporaries(const std::string& folder);

}  // namespace sb
