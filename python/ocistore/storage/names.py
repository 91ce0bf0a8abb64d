"""Repository names and tags, checked against distribution's reference grammar before any of
them becomes part of a path."""

from __future__ import annotations

import re

from .._core import Digest
from ..errors import ErrRepositoryNameInvalid, ErrTagInvalid

__all__ = ["NAME_MAX", "check_repository_name", "check_tag", "parse_reference", "path_sort_key"]

NAME_MAX = 255
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|[-]*)[a-z0-9]+)*")
_TAG = re.compile(r"[\w][\w.-]{0,127}", re.ASCII)


def check_repository_name(name: str) -> str:
    """Returns ``name`` if it is a valid repository name, else raises with the reason."""
    if not isinstance(name, str):
        raise ErrRepositoryNameInvalid(
            f"repository name must be a string, not {type(name).__name__}"
        )
    if not name:
        raise ErrRepositoryNameInvalid("repository name must not be empty", detail={"name": name})
    if len(name) > NAME_MAX:
        raise ErrRepositoryNameInvalid(
            f"repository name must not be longer than {NAME_MAX} characters (got {len(name)})",
            detail={"name": name},
        )
    for component in name.split("/"):
        if not _COMPONENT.fullmatch(component):
            what = (
                "an empty path component" if not component else f"invalid component {component!r}"
            )
            raise ErrRepositoryNameInvalid(
                f"invalid repository name {name!r}: {what}; components are lowercase letters and "
                "digits, separated by '.', '_', '__' or dashes, joined by '/'",
                detail={"name": name},
            )
    return name


def check_tag(tag: str) -> str:
    if not isinstance(tag, str) or not _TAG.fullmatch(tag):
        raise ErrTagInvalid(
            f"invalid tag {tag!r}: a tag is 1 to 128 of [A-Za-z0-9_.-], "
            "not starting with '.' or '-'",
            detail={"tag": tag},
        )
    return tag


def parse_reference(reference: str) -> str | Digest:
    """A manifest reference as the API carries it: a digest (``alg:hex``) or a tag."""
    if ":" in reference:
        return Digest(reference)
    return check_tag(reference)


def path_sort_key(name: str) -> str:
    """Orders names component by component, as distribution's catalog does ('a/b' < 'a-b')."""
    return name.replace("/", "\0")
