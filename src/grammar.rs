//! The one owner of the registry's small grammars: repository names, tags, upload ids,
//! decimals, `Range` and `Content-Range`, the pagination `n`, and query and path decoding. The
//! native front and the Python application (through `ocistore._core`) both judge requests with
//! these functions, so a request the front passes on is read the same way by the application.
//! Messages stay with the callers: these functions say what is wrong, not how to word it.

/// Longest repository name distribution accepts.
pub const NAME_MAX: usize = 255;
/// Longest tag (distribution's `[\w][\w.-]{0,127}`).
pub const TAG_MAX: usize = 128;

/// Why a repository name is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NameProblem {
    Empty,
    /// Longer than `NAME_MAX` bytes (the length given).
    TooLong(usize),
    /// A `/`-separated component that is not `[a-z0-9]+` joined by `.`, `_`, `__` or dashes
    /// (the component given; empty for `a//b`, `/a` or `a/`).
    Component(String),
}

/// distribution's repository name grammar: components of `[a-z0-9]+` joined by `.`, `_`, `__`
/// or any number of dashes, separated by `/`, at most 255 characters.
pub fn repository_name(name: &str) -> Result<(), NameProblem> {
    if name.is_empty() {
        return Err(NameProblem::Empty);
    }
    if name.len() > NAME_MAX {
        return Err(NameProblem::TooLong(name.len()));
    }
    match name.split('/').find(|c| !valid_component(c)) {
        Some(bad) => Err(NameProblem::Component(bad.to_owned())),
        None => Ok(()),
    }
}

pub fn valid_name(name: &str) -> bool {
    repository_name(name).is_ok()
}

fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && alnum(bytes[i]) {
            i += 1;
        }
        if i == start {
            return false; // every separator sits between two alphanumeric runs
        }
        if i == bytes.len() {
            return true;
        }
        let separator = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let ok = match &component[separator..i] {
            "." | "_" | "__" => true,
            dashes => dashes.bytes().all(|b| b == b'-'),
        };
        if !ok {
            return false;
        }
    }
}

/// A tag: 1 to 128 of `[A-Za-z0-9_.-]`, not starting with `.` or `-`.
pub fn valid_tag(tag: &str) -> bool {
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let bytes = tag.as_bytes();
    match bytes.split_first() {
        Some((&first, rest)) => {
            bytes.len() <= TAG_MAX
                && word(first)
                && rest.iter().all(|&b| word(b) || b == b'.' || b == b'-')
        }
        None => false,
    }
}

/// An upload id: a lowercase hyphenated UUID, as uploads are named (so an id can never be a
/// path of more than one segment).
pub fn valid_upload_id(id: &str) -> bool {
    let groups: Vec<&str> = id.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups.iter().all(|g| {
            g.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
}

/// ASCII digits only (no sign, no spaces, no other scripts' digits), fitting u64.
pub fn decimal(text: &str) -> Option<u64> {
    if !is_decimal(text) {
        return None;
    }
    text.parse().ok()
}

/// ASCII digits only; a number too large for u64 is `u64::MAX` (larger than any blob).
fn decimal_saturating(text: &str) -> Option<u64> {
    is_decimal(text).then(|| text.parse().unwrap_or(u64::MAX))
}

pub fn is_decimal(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())
}

/// What a `Range` header asks of a blob of some size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ByteRange {
    /// Not a single byte range (another unit, several ranges, malformed): RFC 9110 lets the
    /// server ignore it and send the whole blob.
    Ignored,
    /// A byte range the blob cannot satisfy: 416 with `Content-Range: bytes */<size>`.
    Unsatisfiable,
    /// `start` and `length` (at least 1) within the blob: 206.
    Satisfiable { start: u64, length: u64 },
}

/// `bytes=a-b`, `bytes=a-` or `bytes=-n` against a blob of `size` bytes.
pub fn byte_range(header: &str, size: u64) -> ByteRange {
    let Some((unit, spec)) = header.trim().split_once('=') else {
        return ByteRange::Ignored;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") || spec.contains(',') {
        return ByteRange::Ignored;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return ByteRange::Ignored;
    };
    if first.is_empty() {
        let Some(suffix) = decimal_saturating(last) else {
            return ByteRange::Ignored;
        };
        if suffix == 0 || size == 0 {
            return ByteRange::Unsatisfiable;
        }
        let start = size.saturating_sub(suffix);
        return ByteRange::Satisfiable {
            start,
            length: size - start,
        };
    }
    let Some(start) = decimal_saturating(first) else {
        return ByteRange::Ignored;
    };
    let end = if last.is_empty() {
        None
    } else {
        match decimal_saturating(last) {
            Some(end) if end >= start => Some(end),
            _ => return ByteRange::Ignored, // malformed or backwards: ignored
        }
    };
    if start >= size {
        return ByteRange::Unsatisfiable;
    }
    let end = end.unwrap_or(size - 1).min(size - 1);
    ByteRange::Satisfiable {
        start,
        length: end - start + 1,
    }
}

/// `(start, end)`, inclusive, of a PATCH's `Content-Range`: `start-end` as clients send it,
/// also `bytes start-end/*`.
pub fn content_range(header: &str) -> Option<(u64, u64)> {
    let mut text = header.trim();
    if text
        .get(..5)
        .is_some_and(|unit| unit.eq_ignore_ascii_case("bytes"))
    {
        text = text[5..].trim().trim_start_matches('=').trim();
    }
    let text = text.split('/').next().unwrap_or_default();
    let (first, last) = text.split_once('-')?;
    let (start, end) = (decimal(first)?, decimal(last)?);
    (end >= start).then_some((start, end))
}

/// Whether a chunk of `Content-Range` `range` (and `Content-Length` `length`, when given)
/// continues an upload of `size` bytes: it starts where the upload ends and its length agrees.
pub fn continues(range: (u64, u64), length: Option<&str>, size: u64) -> bool {
    let (start, end) = range;
    start == size
        && length
            .and_then(decimal)
            .is_none_or(|l| l == end - start + 1)
}

/// An `n` that is not a page size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PageSizeInvalid;

/// The pagination `n` of the catalog and tag listings: absent or empty is None (everything),
/// ASCII digits are the page size (saturating), anything else is refused.
pub fn page_size(raw: Option<&str>) -> Result<Option<u64>, PageSizeInvalid> {
    match raw {
        None | Some("") => Ok(None),
        Some(text) => decimal_saturating(text).map(Some).ok_or(PageSizeInvalid),
    }
}

/// The catalog's order, distribution's: component by component, so `a/b` comes before `a-b`
/// (the separator sorts before every character a name may hold). Names are compared, and
/// `last` is placed, by this key.
pub fn catalog_order_key(name: &str) -> String {
    name.replace('/', "\0")
}

/// Percent-decodes `text` as the application's URL library does: `%xx` becomes its byte, a `%`
/// not followed by two hex digits stays as it is, `+` becomes a space where `plus_is_space`
/// (query strings), and bytes that are not UTF-8 become U+FFFD.
pub fn percent_decode(text: &str, plus_is_space: bool) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' => {
                match (
                    bytes.get(i + 1).and_then(|&b| hex(b)),
                    bytes.get(i + 2).and_then(|&b| hex(b)),
                ) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 3;
                    }
                    _ => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The `key=value` pairs of a query string, decoded, in order; a key without `=` has an empty
/// value, empty pieces (`a=1&&b=2`) are skipped.
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
            (percent_decode(key, true), percent_decode(value, true))
        })
        .collect()
}

/// The first value of `key` in a query string, decoded (a repeated parameter counts once, as
/// Go's `FormValue`, which distribution reads them with, takes the first).
pub fn query_param(query: &str, key: &str) -> Option<String> {
    query_pairs(query)
        .into_iter()
        .find_map(|(k, v)| (k == key).then_some(v))
}

/// Whether `Accept` header values admit `media_type`: no value admits everything; else one of
/// them (parameters dropped, case folded) is `*/*`, the type itself, or its `type/*`.
pub fn accepts<'a>(headers: impl IntoIterator<Item = &'a str>, media_type: &str) -> bool {
    let major = media_type.split('/').next().unwrap_or("");
    let mut any = false;
    for header in headers {
        for part in header.split(',') {
            if part.trim().is_empty() {
                continue;
            }
            any = true;
            let offered = part
                .split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            if offered == "*/*"
                || offered == media_type
                || offered.strip_suffix("/*") == Some(major)
            {
                return true;
            }
        }
    }
    !any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers() {
        let oci = "application/vnd.oci.image.manifest.v1+json";
        assert!(accepts([], oci));
        assert!(accepts([""], oci));
        assert!(accepts(["application/json, */*;q=0.1"], oci));
        assert!(accepts(["text/plain", "Application/*"], oci));
        assert!(accepts(
            [format!("{} ; q=0.5", oci.to_uppercase()).as_str()],
            oci
        ));
        assert!(!accepts(
            ["application/vnd.docker.distribution.manifest.v2+json"],
            oci
        ));
        assert!(!accepts(["; q=1"], oci));
    }

    #[test]
    fn names_follow_distribution_grammar() {
        for ok in ["a", "library/ubuntu", "a.b/c_d/e__f/g-h/i---j", "0/9"] {
            assert_eq!(repository_name(ok), Ok(()), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in [
            "", "A", "a/", "/a", "a//b", "a..b", "a._b", "a___b", "-a", "a-", "a%2fb", &long,
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
        assert_eq!(repository_name(""), Err(NameProblem::Empty));
        assert_eq!(repository_name(&long), Err(NameProblem::TooLong(256)));
        assert_eq!(
            repository_name("ok/Bad/x"),
            Err(NameProblem::Component("Bad".into()))
        );
        assert_eq!(
            repository_name("a//b"),
            Err(NameProblem::Component(String::new()))
        );
    }

    #[test]
    fn tags() {
        for ok in ["v1", "_x", "A.b-c_d", &"a".repeat(128)] {
            assert!(valid_tag(ok), "{ok}");
        }
        for bad in ["", ".a", "-a", "a/b", "a:b", "é", &"a".repeat(129)] {
            assert!(!valid_tag(bad), "{bad}");
        }
    }

    #[test]
    fn upload_ids_are_lowercase_uuids() {
        assert!(valid_upload_id("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"));
        for bad in [
            "",
            "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0",
            "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
            "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f",
            "../../x",
        ] {
            assert!(!valid_upload_id(bad), "{bad}");
        }
    }

    #[test]
    fn ranges() {
        let ok = |start, length| ByteRange::Satisfiable { start, length };
        assert_eq!(byte_range("bytes=0-9", 100), ok(0, 10));
        assert_eq!(byte_range("bytes=90-", 100), ok(90, 10));
        assert_eq!(byte_range("bytes=90-1000", 100), ok(90, 10));
        assert_eq!(byte_range("bytes=-10", 100), ok(90, 10));
        assert_eq!(byte_range("bytes=-1000", 100), ok(0, 100));
        assert_eq!(byte_range(" Bytes = 1-1", 100), ok(1, 1));
        assert_eq!(
            byte_range("bytes=0-99999999999999999999999", 100),
            ok(0, 100)
        );
        for ignored in [
            "bytes=5-4",
            "bytes=0-1,3-4",
            "items=0-1",
            "bytes=+1-2",
            "bytes=a-b",
            "bytes=",
            "bytes=1",
            "bytes=-",
            "bytes",
        ] {
            assert_eq!(byte_range(ignored, 100), ByteRange::Ignored, "{ignored}");
        }
        for unsatisfiable in ["bytes=100-", "bytes=-0", "bytes=99999999999999999999999-"] {
            assert_eq!(
                byte_range(unsatisfiable, 100),
                ByteRange::Unsatisfiable,
                "{unsatisfiable}"
            );
        }
        assert_eq!(byte_range("bytes=0-", 0), ByteRange::Unsatisfiable);
        assert_eq!(byte_range("bytes=-5", 0), ByteRange::Unsatisfiable);
    }

    #[test]
    fn content_ranges() {
        assert_eq!(content_range("0-99"), Some((0, 99)));
        assert_eq!(content_range("bytes 100-199/*"), Some((100, 199)));
        assert_eq!(content_range("Bytes=5-5/10"), Some((5, 5)));
        for bad in [
            "",
            "5-4",
            "-5",
            "5-",
            "a-b",
            "bytes */100",
            "+1-2",
            "byté 1-2",
        ] {
            assert_eq!(content_range(bad), None, "{bad}");
        }
        assert!(continues((10, 14), Some("5"), 10));
        assert!(continues((10, 14), None, 10));
        assert!(!continues((9, 14), None, 10));
        assert!(!continues((10, 14), Some("4"), 10));
    }

    #[test]
    fn page_sizes() {
        assert_eq!(page_size(None), Ok(None));
        assert_eq!(page_size(Some("")), Ok(None));
        assert_eq!(page_size(Some("0")), Ok(Some(0)));
        assert_eq!(page_size(Some("25")), Ok(Some(25)));
        assert_eq!(page_size(Some("99999999999999999999")), Ok(Some(u64::MAX)));
        for bad in ["-1", "1.5", "x", " 1", "²"] {
            assert_eq!(page_size(Some(bad)), Err(PageSizeInvalid), "{bad}");
        }
    }

    #[test]
    fn the_catalog_orders_component_by_component() {
        let mut names = vec!["a-b", "a/b", "a", "a/b/c", "ab"];
        names.sort_by_key(|n| catalog_order_key(n));
        assert_eq!(names, ["a", "a/b", "a/b/c", "a-b", "ab"]);
    }

    #[test]
    fn queries_decode_as_the_application_does() {
        let q = "x=1&digest=sha256%3Aab&mount=a%2Fb+c&digest=second";
        assert_eq!(query_param(q, "digest").as_deref(), Some("sha256:ab"));
        assert_eq!(query_param(q, "mount").as_deref(), Some("a/b c"));
        assert_eq!(query_param(q, "from"), None);
        assert_eq!(query_param("digest=%zz", "digest").as_deref(), Some("%zz"));
        assert_eq!(query_param("xdigest=1", "digest"), None);
        assert_eq!(query_param("flag", "flag").as_deref(), Some(""));
        assert_eq!(percent_decode("a%2", false), "a%2");
        assert_eq!(percent_decode("a%", false), "a%");
        assert_eq!(percent_decode("a+b%2Bc", false), "a+b+c");
        assert_eq!(percent_decode("%ff", false), "\u{fffd}");
        assert_eq!(
            query_pairs("a=1&&b&c=%41"),
            vec![
                ("a".into(), "1".into()),
                ("b".into(), String::new()),
                ("c".into(), "A".into())
            ]
        );
    }
}
