"""A side measurement's results (`batch_ab`, `log_overhead`): JSON and Markdown, side by side."""

import json
from pathlib import Path
from typing import Any


def write_pair(stem: Path, results: dict[str, Any], text: str) -> None:
    """`results` as `stem.json` and the report `text` as `stem.md`; the report is printed too."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1), encoding="utf-8")
    stem.with_suffix(".md").write_text(text, encoding="utf-8")
    print(text)
