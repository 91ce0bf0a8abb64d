//! Authentication for the requests the front answers itself: the application decides (it holds
//! the htpasswd file or the token keys), the front asks it once per credential, repository and
//! kind of access, and reuses a yes for as long as the application allows (at most
//! `protocol::GRANT_SECONDS_MAX`, never past a token's expiry). A no is
//! never kept: the request then goes to the application, which answers it with its challenge.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use http::{HeaderValue, Request, StatusCode, header};

use super::protocol::{AUTHORIZE_PATH, GRANT_SECONDS_HEADER, USER_HEADER};
use super::proxy::Upstream;

/// Grants kept at most; all are dropped when there would be more (then asked for again).
const GRANTS_MAX: usize = 10_000;

#[derive(Hash, PartialEq, Eq)]
struct Key {
    authorization: HeaderValue,
    name: String,
    push: bool,
}

/// Who a grant is for (the access log's `user`) and until when it holds.
struct Grant {
    user: Option<String>,
    until: Instant,
}

#[derive(Default)]
pub struct Grants {
    granted: Mutex<HashMap<Key, Grant>>,
}

impl Grants {
    /// `Some(user)` when `authorization` may pull from repository `name` (and push to it, with
    /// `push`); None when the request must go to the application (no credentials, refused, or
    /// the application could not be asked).
    pub async fn check(
        &self,
        authorization: Option<&HeaderValue>,
        name: &str,
        push: bool,
        ask: &mut Upstream,
        socket: &std::path::Path,
        secret: &HeaderValue,
    ) -> Option<Option<String>> {
        let key = Key {
            authorization: authorization?.clone(),
            name: name.to_owned(),
            push,
        };
        if let Some(grant) = self.granted.lock().expect("no panics while held").get(&key)
            && grant.until > Instant::now()
        {
            return Some(grant.user.clone());
        }
        let uri = format!(
            "{AUTHORIZE_PATH}?name={name}&push={}",
            if push { 1 } else { 0 }
        );
        let request = Request::get(uri)
            .header(header::HOST, "ocistore-front")
            .header(header::AUTHORIZATION, key.authorization.clone())
            .body(super::empty())
            .ok()?;
        let response = ask.send(request, socket, secret).await?;
        if response.status() != StatusCode::NO_CONTENT {
            return None;
        }
        let seconds = header_str(response.headers(), GRANT_SECONDS_HEADER)
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s > 0.0)?;
        let user = header_str(response.headers(), USER_HEADER).map(str::to_owned);
        let until = Instant::now() + Duration::from_secs_f64(seconds);
        let mut granted = self.granted.lock().expect("no panics while held");
        if granted.len() >= GRANTS_MAX {
            granted.clear();
        }
        granted.insert(
            key,
            Grant {
                user: user.clone(),
                until,
            },
        );
        Some(user)
    }
}

fn header_str<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}
