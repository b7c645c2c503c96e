# Copyright 2026 verl-fair developers
# SPDX-License-Identifier: Apache-2.0
"""Every tracked Python and shell file starts with the project's license header.

The header follows an optional shebang and an optional PEP 263 encoding line. Run as a script it is
also the fixer and the pre-commit hook: ``python tests/test_license_headers.py [--fix] [FILE ...]``
(``make headers`` adds the header to every tracked file that lacks it).
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADER = ["# Copyright 2026 verl-fair developers", "# SPDX-License-Identifier: Apache-2.0"]
ENCODING = re.compile(r"^[ \t\f]*#.*?coding[:=][ \t]*[-\w.]+")


def tracked_sources(root: Path = ROOT) -> list[Path]:
    """The Python and shell files git tracks under ``root`` (those deleted from the work tree left out)."""
    listed = subprocess.run(
        ["git", "ls-files", "*.py", "*.sh"], cwd=root, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    return [root / name for name in listed if (root / name).is_file()]


def _preamble(lines: list[str]) -> int:
    """How many leading lines (a shebang, then an encoding declaration) come before the header."""
    count = 1 if lines[:1] and lines[0].startswith("#!") else 0
    if len(lines) > count and ENCODING.match(lines[count]):
        count += 1
    return count


def has_header(text: str) -> bool:
    lines = text.splitlines()
    start = _preamble(lines)
    return lines[start : start + len(HEADER)] == HEADER


def with_header(text: str) -> str:
    """``text`` with the header after its shebang and encoding lines; unchanged if it has it."""
    if has_header(text):
        return text
    lines = text.splitlines(keepends=True)
    start = _preamble(lines)
    if lines[start - 1 : start] and not lines[start - 1].endswith("\n"):
        lines[start - 1] += "\n"
    return "".join(lines[:start] + [line + "\n" for line in HEADER] + lines[start:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fix", action="store_true", help="add the header to the files that lack it")
    parser.add_argument("files", nargs="*", type=Path, help="files to check (default: every tracked source)")
    args = parser.parse_args(argv)
    missing = [path for path in args.files or tracked_sources() if not has_header(path.read_text(encoding="utf-8"))]
    for path in missing:
        if args.fix:
            path.write_text(with_header(path.read_text(encoding="utf-8")), encoding="utf-8")
            print(f"added the license header to {path}")
        else:
            print(f"{path}: no license header; expected after any shebang/encoding line:", *HEADER, sep="\n  ")
    if missing and not args.fix:
        print(f"{len(missing)} file(s) lack the header; add it with: make headers", file=sys.stderr)
        return 1
    return 0


def test_every_tracked_source_starts_with_the_license_header():
    missing = [str(p.relative_to(ROOT)) for p in tracked_sources() if not has_header(p.read_text(encoding="utf-8"))]
    assert not missing, f"{len(missing)} file(s) without the license header (run `make headers`): {missing[:10]}"


def test_fix_puts_the_header_after_shebang_and_encoding_once(tmp_path):
    files = {
        "plain.py": ('"""Doc."""\n', "\n".join(HEADER) + '\n"""Doc."""\n'),
        "empty.py": ("", "\n".join(HEADER) + "\n"),
        "tool.py": (
            "#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\nimport os\n",
            "#!/usr/bin/env python3\n# -*- coding: utf-8 -*-\n" + "\n".join(HEADER) + "\nimport os\n",
        ),
        "run.sh": ("#!/usr/bin/env bash", "#!/usr/bin/env bash\n" + "\n".join(HEADER) + "\n"),
    }
    for name, (before, _) in files.items():
        (tmp_path / name).write_text(before, encoding="utf-8")
    paths = [tmp_path / name for name in files]
    assert main([str(p) for p in paths]) == 1
    assert main(["--fix", *map(str, paths)]) == 0
    assert main(["--fix", *map(str, paths)]) == 0  # a second run changes nothing
    assert {p.name: p.read_text(encoding="utf-8") for p in paths} == {n: after for n, (_, after) in files.items()}
    assert main([str(p) for p in paths]) == 0


def test_a_header_below_the_first_lines_or_with_another_holder_is_refused(tmp_path):
    late = tmp_path / "late.py"
    late.write_text('"""Doc."""\n' + "\n".join(HEADER) + "\n", encoding="utf-8")
    other = tmp_path / "other.sh"
    other.write_text("#!/bin/sh\n# Copyright 2026 someone else\n" + HEADER[1] + "\n", encoding="utf-8")
    assert not has_header(late.read_text()) and not has_header(other.read_text())
    assert main([str(late), str(other)]) == 1


if __name__ == "__main__":
    sys.exit(main())
