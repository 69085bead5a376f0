#!/usr/bin/env python3
"""Every "data.md §N", "models.md §N.M" or "sdk.md §N" in the repository names a heading of
docs/design/ (a heading "## N. ..." or "### N.M ..."), and no file cites a design document
elsewhere. Prints each reference that leads nowhere, with its file and line; exits 1 if any.
Usage: check_references.py SOURCE_DIR"""
import os
import re
import sys

SKIP_DIRS = {".git", "third_party_device"}
TEXT_SUFFIXES = {".cpp", ".hpp", ".h", ".cu", ".cuh", ".md", ".toml", ".txt", ".cmake", ".sh",
                 ".py", ".in", ".json"}
REFERENCE = re.compile(r"\b(data|models|sdk)\.md\s*§\s*(\d+(?:\.\d+)*)")
HEADING = re.compile(r"^#+\s+(\d+(?:\.\d+)*)\.?\s")
OLD_HOME = "shared" + "/spec"  # where the documents lived before docs/design/


def headings(design_dir):
    found = {}
    for doc in ("data.md", "models.md", "sdk.md"):
        with open(os.path.join(design_dir, doc), encoding="utf-8") as f:
            found[doc] = {m.group(1) for m in map(HEADING.match, f) if m}
    return found


def source_files(root):
    for folder, dirs, files in os.walk(root):
        # Build trees (build/, build-gpu/, ...) and fetched headers are not the project's text.
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith("build")]
        for name in files:
            if os.path.splitext(name)[1] in TEXT_SUFFIXES or name == "CMakeLists.txt":
                yield os.path.join(folder, name)


def main():
    root = sys.argv[1]
    known = headings(os.path.join(root, "docs", "design"))
    broken = 0
    checked = 0
    for path in sorted(source_files(root)):
        with open(path, encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                for m in REFERENCE.finditer(line):
                    checked += 1
                    doc, section = m.group(1) + ".md", m.group(2)
                    if section not in known[doc]:
                        broken += 1
                        print(f"{os.path.relpath(path, root)}:{number}: {doc} §{section} is not a "
                              f"heading of docs/design/{doc}")
                if OLD_HOME in line:
                    broken += 1
                    print(f"{os.path.relpath(path, root)}:{number}: cites {OLD_HOME}; the design "
                          "documents are docs/design/")
    print(f"design references: {checked} checked, {broken} leading nowhere")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
