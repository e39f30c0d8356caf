"""Each peer's own virtual environment, built from its `requirements.txt` by uv.

The peers are installed by the benchmark, never into the workspace: their dependencies
(MLServer's FastAPI and pydantic, BentoML's own stack) would otherwise bend `uv.lock`, and our
server's import graph must not see them. An environment is rebuilt only when what it was built
from changes: a stamp file holds the hash of the requirements (and of `shared_schema` for the
peer that imports it).
"""

import hashlib
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from benchmarks.servers import ENVS_DIR, REPO_ROOT

PEERS_DIR: Final = Path(__file__).resolve().parent
PYTHON: Final = "3.12"
_STAMP: Final = ".peer-stamp"


@dataclass(frozen=True)
class PeerEnv:
    """A peer's environment: its requirements, and workspace packages installed on top."""

    name: str
    #: Workspace packages installed without dependencies (theirs are in the requirements).
    local_packages: tuple[Path, ...] = ()

    @property
    def requirements(self) -> Path:
        return PEERS_DIR / self.name / "requirements.txt"

    @property
    def root(self) -> Path:
        return ENVS_DIR / self.name

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def fingerprint(self) -> str:
        """Hash of everything the environment is built from."""
        digest = hashlib.sha256(self.requirements.read_bytes())
        for package in self.local_packages:
            for path in sorted(package.rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    digest.update(str(path.relative_to(package)).encode())
                    digest.update(path.read_bytes())
        return digest.hexdigest()

    def is_current(self) -> bool:
        """Whether the environment exists and was built from the current requirements."""
        stamp = self.root / _STAMP
        return stamp.is_file() and stamp.read_text(encoding="utf-8") == self.fingerprint()

    def ensure(self) -> Path:
        """Build the environment unless it is current; its `bin/` directory.

        `uv pip sync` makes the environment exactly the requirements (removing extras), so a
        rebuild after a change needs no fresh venv.
        """
        if self.is_current():
            return self.bin
        if not (self.bin / "python").exists():
            _uv("venv", "--quiet", "--python", PYTHON, str(self.root))
        python = ("--python", str(self.bin / "python"))
        _uv("pip", "sync", "--quiet", *python, str(self.requirements))
        for package in self.local_packages:
            _uv("pip", "install", "--quiet", "--no-deps", *python, str(package))
        (self.root / _STAMP).write_text(self.fingerprint(), encoding="utf-8")
        return self.bin

    def versions(self) -> dict[str, str]:
        """Every installed distribution and its version (`uv pip list`)."""
        listed = _uv("pip", "list", "--format", "json", "--python", str(self.bin / "python"))
        return {entry["name"]: entry["version"] for entry in json.loads(listed)}


def _uv(*args: str) -> str:
    # uv runs from the repository root so that `.python-version` picks the same interpreter.
    done = subprocess.run(["uv", *args], check=False, cwd=REPO_ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"uv {' '.join(args)} failed:\n{done.stderr}")
    return done.stdout


MLSERVER: Final = PeerEnv("mlserver")
BENTOML: Final = PeerEnv("bentoml", (REPO_ROOT / "shared_schema",))
