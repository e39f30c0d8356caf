"""Generated files: the one check and the one writer behind `make generate`.

Each generator (`k8s.generate`: the SLO's values and k8s/'s copies; `scripts.dvc_deps`: dvc.yaml's
code deps and dvc.lock's records of them) maps every file it owns, relative to the checkout, to
what writes its text from the checkout as it is. The files are written in that order, so a later
one may read an earlier one (the rules are stamped with the SLO before k8s/ copies them).
`python -m scripts.generated` runs every generator; `--check` writes nothing and exits 1 naming
each file that differs, with the difference (the tests do the same).
"""

import argparse
import difflib
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

#: The command that writes every generated file (named in their headers and in every problem).
COMMAND: Final = "make generate"
ROOT: Final = Path(__file__).resolve().parents[1]

#: {file relative to the checkout: what writes its text from the checkout}, in writing order.
Targets = Mapping[Path, Callable[[Path], str]]


def stale(targets: Targets, root: Path = ROOT) -> list[str]:
    """Each committed file that differs from what its generator writes, with the difference."""
    problems = []
    for target, write in targets.items():
        path, wanted = root / target, write(root)
        committed = path.read_text(encoding="utf-8") if path.exists() else ""
        if committed != wanted:
            diff = difflib.unified_diff(
                committed.splitlines(keepends=True),
                wanted.splitlines(keepends=True),
                f"{target} (committed)",
                f"{target} (generated)",
                n=1,
            )
            problems.append(f"{target} differs from `{COMMAND}`:\n{''.join(diff)}")
    return problems


def generate(targets: Targets, root: Path = ROOT) -> list[Path]:
    """Write each file in turn (a later one may read an earlier one); the ones that changed."""
    written = []
    for target, write in targets.items():
        path, text = root / target, write(root)
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(target)
    return written


def every_target() -> dict[Path, Callable[[Path], str]]:
    """The files of every generator, in writing order."""
    from k8s import generate as k8s_files
    from scripts import dvc_deps

    return {**k8s_files.GENERATED, **dvc_deps.GENERATED}


def main(argv: list[str] | None = None) -> int:
    """Write every generated file, or with --check name those that differ."""
    parser = argparse.ArgumentParser(prog=COMMAND, description=__doc__)
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if stale")
    args = parser.parse_args(argv)
    try:
        if args.check:
            problems = stale(every_target())
            for problem in problems:
                print(problem, file=sys.stderr)
            return 1 if problems else 0
        written = generate(every_target())
    except ValueError as error:  # StampError (a stamp finds nothing), LayoutError (dvc.yaml)
        print(f"{parser.prog}: error: {error}", file=sys.stderr)
        return 1
    for target in written:
        print(f"wrote {target}")
    if not written:
        print("every generated file already matches its source")
    return 0


if __name__ == "__main__":
    sys.exit(main())
