"""Property tests for the HTTP header parsers (Range, Content-Range, Accept)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ocistore.server.http import ApiError, ByteRange, accepts, parse_content_range, parse_range

headers = st.one_of(
    st.text(max_size=40),
    st.builds(
        lambda a, b, sep: f"bytes={a}{sep}{b}",
        st.one_of(st.integers(0, 10**6).map(str), st.just(""), st.text(max_size=3)),
        st.one_of(st.integers(0, 10**6).map(str), st.just(""), st.text(max_size=3)),
        st.sampled_from(["-", "--", ",", ""]),
    ),
)


@given(headers, st.integers(0, 10**6))
def test_range_is_served_ignored_or_refused(header: str, size: int) -> None:
    try:
        result = parse_range(header, size)
    except ApiError as e:
        assert e.status == 416 and e.headers["Content-Range"] == f"bytes */{size}"
        return
    if result is not None:
        assert 0 <= result.start <= result.end < size
        assert result.length == result.end - result.start + 1


@given(st.integers(0, 10**6), st.integers(0, 10**6), st.integers(1, 10**6))
def test_well_formed_ranges(first: int, last: int, size: int) -> None:
    header = f"bytes={first}-{last}"
    if last < first:
        assert parse_range(header, size) is None
    elif first >= size:
        with pytest.raises(ApiError):
            parse_range(header, size)
    else:
        assert parse_range(header, size) == ByteRange(first, min(last, size - 1))
    suffix = parse_range(f"bytes=-{last}", size) if last else None
    if last:
        assert suffix == ByteRange(max(size - last, 0), size - 1)


# Unicode's White_Space, which the core's grammar (Rust's str::trim) strips around the parts
# (Python's \s and str.strip() would also take the ASCII separators \x1c-\x1f).
WHITE_SPACE = (
    "".join(map(chr, [*range(0x09, 0x0E), 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B)]))
    + "\u2028\u2029\u202f\u205f\u3000"
)
_WS = f"[{re.escape(WHITE_SPACE)}]*"
CONTENT_RANGE = re.compile(
    rf"(?:bytes{_WS}=*{_WS})?([0-9]+)-([0-9]+)(?:/.*)?", re.IGNORECASE | re.DOTALL
)
U64_MAX = 2**64 - 1


@given(st.one_of(st.text(max_size=30), st.from_regex(CONTENT_RANGE, fullmatch=True)))
def test_content_range(header: str) -> None:
    match = CONTENT_RANGE.fullmatch(header.strip(WHITE_SPACE))
    expected = None
    if match and U64_MAX >= int(match[2]) >= int(match[1]):
        expected = (int(match[1]), int(match[2]))
    assert parse_content_range(header) == expected


@pytest.mark.parametrize("text", ["²-3", "1-²", "٣-4"])
def test_unicode_digits_are_not_numbers(text: str) -> None:
    assert parse_content_range(text) is None
    assert parse_range(f"bytes={text}", 10) is None


@given(
    st.lists(
        st.sampled_from(["application/json", "*/*", "application/*", "text/plain", "", " , "]),
        max_size=4,
    )
)
def test_accept(offered: list[str]) -> None:
    header = ", ".join(offered)
    result = accepts([header], "application/vnd.oci.image.manifest.v1+json")
    named = {o.strip() for o in offered if o.strip() and o.strip() != ","}
    if not named:
        assert result
    else:
        assert result == bool(named & {"*/*", "application/*"})
