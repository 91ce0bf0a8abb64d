"""Prints, shell-quoted, what `make setup` installs into .venv: the project's dependencies and its
`test` extra with every `ocistore[...]` reference expanded (pip would fetch ocistore itself from
PyPI for those; the Makefile builds it from this tree instead)."""

import re
import shlex
import tomllib
from pathlib import Path

project = tomllib.loads((Path(__file__).parent.parent / "pyproject.toml").read_text())["project"]
extras = project["optional-dependencies"]
SELF = re.compile(r"^ocistore\[([^\]]+)\]$")


def expand(requirements: list[str], seen: set[str]) -> list[str]:
    out = []
    for requirement in requirements:
        if match := SELF.match(requirement.replace(" ", "")):
            for name in match.group(1).split(","):
                if name not in seen:
                    seen.add(name)
                    out += expand(extras[name], seen)
        elif requirement not in out:
            out.append(requirement)
    return out


packages = expand(project["dependencies"] + extras["test"], {"test"})
print(" ".join(shlex.quote(p) for p in dict.fromkeys(packages)))
