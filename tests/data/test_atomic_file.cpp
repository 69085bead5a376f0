// Atomic writes (core/util/atomic_file.hpp): the temporaries a killed writer leaves are removed,
// those of live processes and other hosts are kept.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/util/atomic_file.hpp"

namespace sb {
namespace {

namespace fs = std::filesystem;

TEST(AtomicFile, StaleTemporariesOfDeadWritersAreRemoved) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("sb_atomic_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  char host[64] = {};
  ::gethostname(host, sizeof(host) - 1);
  // A process that has ended: its pid no longer runs.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ::waitpid(child, nullptr, 0);
  const std::string dead = std::to_string(child), alive = std::to_string(::getppid());
  const auto touch = [&](const std::string& name) { std::ofstream(dir / name) << "x"; };
  touch("summary.json");
  touch("summary.json.tmp." + std::string(host) + "." + dead + ".3");  // killed writer: removed
  touch("summary.json.tmp." + std::string(host) + "." + alive + ".0");  // live writer: kept
  touch("summary.json.tmp.elsewhere." + dead + ".0");                   // another host: kept
  touch("notes.tmp.txt");                                               // not a temporary
  EXPECT_EQ(remove_stale_temporaries(dir.string()), 1);
  EXPECT_FALSE(fs::exists(dir / ("summary.json.tmp." + std::string(host) + "." + dead + ".3")));
  for (const std::string& kept : std::vector<std::string>{"summary.json", "notes.tmp.txt", "summary.json.tmp.elsewhere." + dead + ".0",
                                 "summary.json.tmp." + std::string(host) + "." + alive + ".0"}) {
    EXPECT_TRUE(fs::exists(dir / kept)) << kept;
  }
  // A file written atomically leaves no temporary behind.
  write_file_atomically((dir / "a.txt").string(), [](std::ostream& o) { o << "done\n"; });
  EXPECT_EQ(remove_stale_temporaries(dir.string()), 0);
  EXPECT_EQ(remove_stale_temporaries((dir / "missing").string()), 0);
  fs::remove_all(dir);
}

// The rename would replace a symlink (not its target), a FIFO or a device node with a regular
// file: those are refused, named, and left as they were.
TEST(AtomicFile, ASymlinkFifoOrFolderIsNotReplaced) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("sb_atomic_kind_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "folder");
  std::ofstream(dir / "target.txt") << "keep\n";
  fs::create_symlink(dir / "target.txt", dir / "link.txt");
  ASSERT_EQ(::mkfifo((dir / "fifo").c_str(), 0600), 0);
  for (const auto& [name, kind] : std::vector<std::pair<std::string, std::string>>{
           {"link.txt", "a symbolic link"}, {"fifo", "not a regular file"}, {"folder", "a directory"}}) {
    const std::string path = (dir / name).string();
    try {
      write_file_atomically(path, [](std::ostream& o) { o << "new\n"; });
      ADD_FAILURE() << name << " was replaced";
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("cannot write " + path + ": it is " + kind), std::string::npos)
          << e.what();
    }
  }
  EXPECT_TRUE(fs::is_symlink(dir / "link.txt"));
  EXPECT_TRUE(fs::is_fifo(dir / "fifo"));
  std::ifstream in(dir / "target.txt");
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "keep");
  // A regular file is replaced as before.
  write_file_atomically((dir / "target.txt").string(), [](std::ostream& o) { o << "new\n"; });
  std::ifstream again(dir / "target.txt");
  std::getline(again, line);
  EXPECT_EQ(line, "new");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace sb
