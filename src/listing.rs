//! The catalog's and tag listings' pages (distribution's `n` and `last`), and a tag listing's
//! body: one owner for the native front and the application.

/// The first `n` of `items` (all of them without `n`) and the `Link` header to the next page
/// when more remain. `n = 0` is an empty page without a `Link` (a `Link` with an empty `last`
/// would send a client following it round in a loop). `path` is the listing's path.
pub fn page(mut items: Vec<String>, n: Option<u64>, path: &str) -> (Vec<String>, Option<String>) {
    let Some(n) = n else {
        return (items, None);
    };
    let n = usize::try_from(n).unwrap_or(usize::MAX);
    if n == 0 {
        return (Vec::new(), None);
    }
    if items.len() <= n {
        return (items, None);
    }
    items.truncate(n);
    let last = percent_encode(&items[n - 1]);
    let link = format!("<{path}?last={last}&n={n}>; rel=\"next\"");
    (items, Some(link))
}

/// `text` with every byte but ASCII letters, digits and `_.-~` percent-encoded (Python's
/// `urllib.parse.quote` with nothing else safe, which a name's `/` is not).
fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &byte in text.as_bytes() {
        if byte.is_ascii_alphanumeric() || b"_.-~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The tags after `last` (all of them without one), in order: a page starts after the last
/// name the previous page ended with.
fn after(items: Vec<String>, last: Option<&str>) -> Vec<String> {
    match last {
        Some(last) if !last.is_empty() => items.into_iter().filter(|t| t.as_str() > last).collect(),
        _ => items,
    }
}

/// A tag listing of repository `name`: the tags after `last`, paged by `n`; its body and the
/// `Link` to the next page.
pub fn tag_page(
    name: &str,
    tags: Vec<String>,
    n: Option<u64>,
    last: Option<&str>,
) -> (String, Option<String>) {
    let path = format!("/v2/{name}/tags/list");
    let (tags, link) = page(after(tags, last), n, &path);
    (tags_body(name, &tags), link)
}

/// A JSON string as Python's `json.dumps` writes it (ASCII only, escapes as it spells them).
fn json_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// The body of a tag listing (`tag_page`): `{"name": …, "tags": […]}`, spelled byte for byte as the
/// application's JSON writer spells it.
fn tags_body(name: &str, tags: &[String]) -> String {
    let mut out = String::from("{\"name\": ");
    json_string(name, &mut out);
    out.push_str(", \"tags\": [");
    for (i, tag) in tags.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        json_string(tag, &mut out);
    }
    out.push_str("]}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn a_page_links_to_the_next_only_when_more_remain() {
        let all = names(&["a", "b/c", "d"]);
        assert_eq!(page(all.clone(), None, "/v2/_catalog"), (all.clone(), None));
        assert_eq!(page(all.clone(), Some(0), "/v2/_catalog"), (vec![], None));
        assert_eq!(
            page(all.clone(), Some(3), "/v2/_catalog"),
            (all.clone(), None)
        );
        assert_eq!(
            page(all.clone(), Some(2), "/v2/_catalog"),
            (
                names(&["a", "b/c"]),
                Some("</v2/_catalog?last=b%2Fc&n=2>; rel=\"next\"".to_owned())
            )
        );
        assert_eq!(page(all.clone(), Some(u64::MAX), "/x").0, all);
    }

    #[test]
    fn after_skips_up_to_and_including_last() {
        let all = names(&["1.0", "1.1", "latest"]);
        assert_eq!(after(all.clone(), Some("1.0")), names(&["1.1", "latest"]));
        assert_eq!(after(all.clone(), Some("")), all);
        assert_eq!(after(all.clone(), Some("zzz")), Vec::<String>::new());
    }

    #[test]
    fn the_body_is_spelled_as_python_json_dumps_spells_it() {
        assert_eq!(
            tags_body("a/b", &names(&["v1", "latest"])),
            r#"{"name": "a/b", "tags": ["v1", "latest"]}"#
        );
        assert_eq!(tags_body("x", &[]), r#"{"name": "x", "tags": []}"#);
        assert_eq!(
            tags_body("q\"\\\u{1}é😀", &[]),
            r#"{"name": "q\"\\\u0001\u00e9\ud83d\ude00", "tags": []}"#
        );
    }
}
