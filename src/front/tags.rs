//! Tag listings served by the front itself, on filesystem storage (`GET /v2/<name>/tags/list`):
//! the tags are the core's (`crate::tags`), the page and its body too (`crate::listing`), as
//! the application's. Anything else (an unknown repository, an invalid `n`, a pull-through
//! cache's `ns`, which `own_request` leaves out) goes to the application.

use http::{Response, StatusCode, header};
use http_body_util::{BodyExt, Full};

use super::Body;
use crate::grammar::{self, valid_name};
use crate::storage::Storage;
use crate::{listing, tags};

/// The repository of `/v2/<name>/tags/list`.
pub fn parse_tags_path(path: &str) -> Option<&str> {
    let name = path.strip_prefix("/v2/")?.strip_suffix("/tags/list")?;
    valid_name(name).then_some(name)
}

/// The listing's body and `Link`; None sends the request on.
pub fn list(
    storage: &Storage,
    name: &str,
    query: Option<&str>,
) -> Option<(String, Option<String>)> {
    let query = query.unwrap_or("");
    let n = grammar::page_size(grammar::query_param(query, "n").as_deref()).ok()?;
    let last = grammar::query_param(query, "last");
    let tags = tags::tags(&*storage.links, name).ok()??;
    Some(listing::tag_page(name, tags, n, last.as_deref()))
}

/// The response for a listing, as the application answers it.
pub fn respond(body: String, link: Option<String>, extra: &[(String, String)]) -> Response<Body> {
    let mut builder = super::response_builder(extra)
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::CONTENT_LENGTH, body.len());
    if let Some(link) = link {
        builder = builder.header(header::LINK, link);
    }
    builder
        .body(
            Full::new(bytes::Bytes::from(body))
                .map_err(|never| match never {})
                .boxed(),
        )
        .expect("a link of a valid name and tags is a valid header value")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_paths() {
        assert_eq!(parse_tags_path("/v2/a/b/tags/list"), Some("a/b"));
        assert_eq!(parse_tags_path("/v2/A/tags/list"), None);
        assert_eq!(parse_tags_path("/v2/a/tags/list/"), None);
        assert_eq!(parse_tags_path("/v2/tags/list"), None);
    }
}
