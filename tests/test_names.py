from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ocistore import Digest
from ocistore.errors import ErrDigestInvalid, ErrRepositoryNameInvalid, ErrTagInvalid
from ocistore.storage import check_repository_name, check_tag, parse_reference

# distribution's reference grammar, written out independently of ocistore's code.
ALNUM = "[a-z0-9]+"
SEPARATOR = "(?:[._]|__|[-]*)"
COMPONENT = f"{ALNUM}(?:{SEPARATOR}{ALNUM})*"
NAME = re.compile(f"{COMPONENT}(?:/{COMPONENT})*")
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")

alnum = st.text(alphabet="abcz019", min_size=1, max_size=6)
separator = st.sampled_from([".", "_", "__", "", "-", "--", "---"])
component = st.builds(
    lambda first, rest: first + "".join(s + a for s, a in rest),
    alnum,
    st.lists(st.tuples(separator, alnum), max_size=3),
)
valid_names = (
    st.lists(component, min_size=1, max_size=4).map("/".join).filter(lambda n: len(n) <= 255)
)


@given(valid_names)
def test_grammar_names_are_accepted(name: str) -> None:
    assert check_repository_name(name) == name


@given(st.text(alphabet="ab1-_./A:@ ", max_size=20))
def test_names_accepted_exactly_by_grammar(name: str) -> None:
    if NAME.fullmatch(name):
        assert check_repository_name(name) == name
    else:
        with pytest.raises(ErrRepositoryNameInvalid) as info:
            check_repository_name(name)
        assert info.value.code == "NAME_INVALID"


@pytest.mark.parametrize(
    "bad",
    ["", "A", "a//b", "/a", "a/", "-a", "a-", "a..b", "a___b", "a._b", "../etc", "a/./b",
     "a b", "a:tag", "a@sha256", "é", "a" * 256, "a/" * 127 + "ab"],
)  # fmt: skip
def test_invalid_names_say_why(bad: str) -> None:
    with pytest.raises(ErrRepositoryNameInvalid) as info:
        check_repository_name(bad)
    assert info.value.message


def test_name_length_limit() -> None:
    assert check_repository_name("a" * 255)
    with pytest.raises(ErrRepositoryNameInvalid, match="255"):
        check_repository_name("a" * 256)


@given(st.text(alphabet="aZ9_.-/:é", max_size=130))
def test_tags_accepted_exactly_by_grammar(tag: str) -> None:
    if TAG.fullmatch(tag):
        assert check_tag(tag) == tag
    else:
        with pytest.raises(ErrTagInvalid):
            check_tag(tag)


DIGEST = re.compile(r"(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}|blake3:[0-9a-f]{64})")


@given(
    st.one_of(
        st.text(alphabet="aZ9_.-:/", max_size=20),
        st.builds(
            lambda h: "sha256:" + h, st.text(alphabet="0123456789abcdefA", min_size=63, max_size=65)
        ),
    )
)
def test_references_are_tags_or_digests(reference: str) -> None:
    if DIGEST.fullmatch(reference):
        assert parse_reference(reference) == Digest(reference)
    elif TAG.fullmatch(reference):
        assert parse_reference(reference) == reference
    else:
        with pytest.raises((ErrTagInvalid, ErrDigestInvalid)):
            parse_reference(reference)
