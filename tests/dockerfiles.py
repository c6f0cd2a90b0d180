"""Reading what a Dockerfile says (no container engine here: the images' instructions are
checked against the local stack and the chart, and replayed on this machine)."""

import re
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def instructions(path):
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (ROOT / path).read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def values(path, word):
    return [rest for w, rest in instructions(path) if w == word]


def froms(path):
    """The FROM lines, each ${ARG} replaced by its default (the bases of an ordinary build)."""
    args = dict(rest.partition("=")[::2] for rest in values(path, "ARG"))
    return [re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], rest) for rest in values(path, "FROM")]


def env_of(path):
    env = {}
    for rest in values(path, "ENV"):
        for item in shlex.split(rest):
            key, _, value = item.partition("=")
            env[key] = value
    return env
