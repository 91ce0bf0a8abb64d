"""Repository names and tags, checked against distribution's reference grammar before any of
them becomes part of a path. The grammar is the core's (``src/grammar.rs``, which the native
front judges requests with too); the messages are worded here."""

from __future__ import annotations

from .. import _core
from .._core import Digest
from ..errors import ErrRepositoryNameInvalid, ErrTagInvalid

__all__ = ["NAME_MAX", "check_repository_name", "check_tag", "parse_reference", "path_sort_key"]

NAME_MAX: int = _core.NAME_MAX


def check_repository_name(name: str) -> str:
    """Returns ``name`` if it is a valid repository name, else raises with the reason."""
    if not isinstance(name, str):
        raise ErrRepositoryNameInvalid(
            f"repository name must be a string, not {type(name).__name__}"
        )
    problem = _core.repository_name_problem(name)
    if problem is None:
        return name
    kind, what = problem
    if kind == "empty":
        raise ErrRepositoryNameInvalid("repository name must not be empty", detail={"name": name})
    if kind == "too_long":
        raise ErrRepositoryNameInvalid(
            f"repository name must not be longer than {NAME_MAX} characters (got {what})",
            detail={"name": name},
        )
    component = "an empty path component" if not what else f"invalid component {what!r}"
    raise ErrRepositoryNameInvalid(
        f"invalid repository name {name!r}: {component}; components are lowercase letters and "
        "digits, separated by '.', '_', '__' or dashes, joined by '/'",
        detail={"name": name},
    )


def check_tag(tag: str) -> str:
    if not isinstance(tag, str) or not _core.valid_tag(tag):
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
    return _core.catalog_order_key(name)
