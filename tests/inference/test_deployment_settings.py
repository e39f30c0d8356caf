"""The rollout's settings in the deployment files: shown commented out (off), each a real one."""

import re

import yaml

from inference.settings import Settings

from ..training.conftest import REPO_ROOT

SERVER_ENV = REPO_ROOT / "k8s" / "base" / "server.env"
COMPOSE = REPO_ROOT / "docker-compose.yml"
#: Every shadow and canary setting the server has: a new one must be shown in both files.
ROLLOUT = {
    name.upper() for name in Settings.__struct_fields__ if name.startswith(("shadow_", "canary_"))
}
#: A commented-out setting: `#NAME=value` in an env file, `# NAME: "value"` under compose's
#: `environment:` (prose comments have a space, or no quoted value, and never match).
ENV_EXAMPLE = re.compile(r"^#([A-Z][A-Z0-9_]*)=(\S+)$", re.MULTILINE)
COMPOSE_EXAMPLE = re.compile(r'^\s+# ([A-Z][A-Z0-9_]*): "([^"]*)"$', re.MULTILINE)


def example_problems(examples: list[tuple[str, str]]) -> list[str]:
    """Each example a server setting whose value the server accepts, and every rollout one shown."""
    problems = []
    for name, value in examples:
        if name.lower() not in Settings.__struct_fields__:
            problems.append(f"{name} is not a server setting")
            continue
        try:
            Settings.from_env({name: value})
        except ValueError as error:
            problems.append(f"{name}={value}: {error}")
    missing = ROLLOUT - {name for name, _ in examples}
    if missing:
        problems.append(f"not shown: {', '.join(sorted(missing))}")
    return problems


def set_in_env_file(text: str) -> set[str]:
    """The names an env file sets (uncommented `NAME=value` lines)."""
    return {line.split("=", 1)[0] for line in text.splitlines() if re.match(r"^[A-Z_]+=", line)}


def test_server_env_shows_the_rollout_settings_and_sets_none() -> None:
    """k8s/base/server.env shows every shadow and canary setting, valid, and sets none (off)."""
    text = SERVER_ENV.read_text(encoding="utf-8")
    assert {"SHADOW_SHARE", "SHADOW_QUEUE_MAX", "CANARY_SHARE"} == ROLLOUT
    assert example_problems(ENV_EXAMPLE.findall(text)) == []
    assert not ROLLOUT & set_in_env_file(text)


def test_compose_shows_the_rollout_settings_and_sets_none() -> None:
    """docker-compose.yml's server shows every shadow and canary setting, valid, and sets none."""
    text = COMPOSE.read_text(encoding="utf-8")
    assert example_problems(COMPOSE_EXAMPLE.findall(text)) == []
    environment = yaml.safe_load(text)["services"]["server"]["environment"]
    assert not ROLLOUT & set(environment)


def test_a_wrong_example_is_named() -> None:
    """A misspelt name, a share outside [0, 1] and a setting left out are each named."""
    text = SERVER_ENV.read_text(encoding="utf-8")
    broken = text.replace("#SHADOW_SHARE=", "#SHADOW_SHARES=").replace(
        "#CANARY_SHARE=0.05", "#CANARY_SHARE=1.5"
    )
    problems = example_problems(ENV_EXAMPLE.findall(broken))
    assert problems[0] == "SHADOW_SHARES is not a server setting"
    assert problems[1].startswith("CANARY_SHARE=1.5: ")
    assert "<= 1.0" in problems[1]
    assert problems[2] == "not shown: SHADOW_SHARE"
    assert len(problems) == 3
