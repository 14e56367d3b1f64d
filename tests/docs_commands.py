"""The ``loopwise`` commands the docs name, checked against the CLI itself: every subcommand
exists and every ``--option`` belongs to that command (or to ``loopwise`` itself)."""

from __future__ import annotations

import functools
import re
import shlex
from collections.abc import Iterator
from typing import Any

import typer

from loopwise.cli import app

SHELL_BLOCK = re.compile(r"^```(?:bash|console|shell|sh)\n(.*?)^```", re.MULTILINE | re.DOTALL)
INLINE = re.compile(r"(?<!`)`(loopwise [^`\n]+)`(?!`)")
ENDS = {"|", "||", "&&", ";", ">", ">>", "&"}

__all__ = ["command_lines", "problems"]


def command_lines(text: str) -> Iterator[str]:
    """Each ``loopwise ...`` command in the shell blocks and inline code of a page."""
    for block in SHELL_BLOCK.findall(text):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.strip().removeprefix("$ ")
            if line.startswith("loopwise "):
                yield line
    yield from INLINE.findall(text)


def _words(line: str) -> list[str]:
    """The words of a command up to a comment, pipe or redirection."""
    try:
        words = shlex.split(line, comments=True)
    except ValueError:  # an unbalanced quote inside prose: read up to it
        words = line.split()
    for index, word in enumerate(words):
        if word in ENDS:
            return words[:index]
    return words


# Typer vendors its own click (``typer._click``), so commands and options are told apart by what
# they have, not by their class.
def _option_params(command: Any) -> list[Any]:
    return [p for p in command.params if getattr(p, "param_type_name", "") == "option"]


def _takes_value(command: Any, word: str) -> bool:
    name = word.split("=", 1)[0]
    for param in _option_params(command):
        if name in (*param.opts, *param.secondary_opts):
            return not param.is_flag and "=" not in word
    return False


def _options(command: Any) -> set[str]:
    return {
        opt for param in _option_params(command) for opt in (*param.opts, *param.secondary_opts)
    }


@functools.cache
def _root() -> Any:
    """``loopwise`` as click sees it (built once: building it costs ~10 ms)."""
    return typer.main.get_command(app)


def problems(line: str) -> list[str]:
    """What is wrong with one documented command (empty when the CLI has all it names)."""
    root = _root()
    words = _words(line)[1:]
    command: Any = root
    found: list[str] = []
    known = _options(root) | {"--help"}
    index = 0
    while index < len(words):
        word = words[index]
        if word.startswith("-"):
            name = word.split("=", 1)[0]
            if name not in known | _options(command) and not re.fullmatch(r"-\d.*", word):
                found.append(f"{' '.join(['loopwise', *words[: index + 1]])!r}: no option {name}")
            skip = _takes_value(command, word) or (command is not root and _takes_value(root, word))
            index += 2 if skip else 1
            continue
        if hasattr(command, "commands"):
            alternatives = re.split(r"[|/]", word)  # `status|report`: each must exist
            if len(alternatives) > 1:
                found += [
                    p
                    for choice in alternatives
                    for p in problems(" ".join(["loopwise", *words[:index], choice]))
                ]
                return found
            sub = command.commands.get(word)
            if sub is None:
                if not word.isupper() and "<" not in word:  # NAME, <run>: a placeholder
                    found.append(f"{line!r}: `loopwise` has no command {word!r} there")
                return found
            command = sub
        index += 1
    return found
