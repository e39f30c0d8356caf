"""Generated files: the one check and the one writer behind `make generate`.

Each generator (`k8s.generate`: the SLO's values and k8s/'s copies; `scripts.dvc_deps`: dvc.yaml's
code deps and dvc.lock's records of them) maps every file it owns, relative to the checkout, to
what writes its text from the checkout as it is. The files are written in that order, so a later
one may read an earlier one (the rules are stamped with the SLO before k8s/ copies them).
`python -m scripts.generate` runs every generator (the generators import this module, it imports
none of them).
"""

import difflib
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
