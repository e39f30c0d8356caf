"""`make generate`: write every generated file, or with `--check` name each that differs.

The generators, in writing order: `k8s.generate` (the SLO's values, then k8s/'s copies of the
proxy config and the rules) and `scripts.dvc_deps` (dvc.yaml's code deps, dvc.lock's records of
them). `scripts.generated` checks and writes them; `--check` writes nothing and exits 1 naming
each stale file with the difference (the tests do the same).
"""

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from scripts.generated import COMMAND, generate, stale

from k8s import generate as k8s_files
from scripts import dvc_deps


def every_target() -> dict[Path, Callable[[Path], str]]:
    """The files of every generator, in writing order."""
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
