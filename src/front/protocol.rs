//! The private protocol between the native front and the Python application behind it, defined
//! once: the application reads these paths, headers and limits from `ocistore._core`
//! (`FrontProtocol`, `read_front_records`), so neither side spells the other's half.
//!
//! - Requests the front passes on carry `SECRET_HEADER` (the front's secret) and
//!   `CLIENT_HEADER` (the client's address); a PUT whose body the front wrote carries
//!   `BODY_BYTES_HEADER`.
//! - `AUTHORIZE_PATH?name=<repository>&push=0|1`, with the client's `Authorization`: 204 with
//!   `GRANT_SECONDS_HEADER` (how long the front may reuse the yes) and `USER_HEADER`, or the
//!   application's refusal.
//! - `OBSERVATIONS_PATH`: a JSON array of `Record`s, the requests the front answered itself,
//!   for the application's metrics and access log.
//! - `TAIL_HEADER` on the application's answer to a blob GET its pull-through cache is fetching:
//!   a `TailOrder`; the front sends the body itself, from the fetch's upload as it grows
//!   (`crate::front::tail`), following the fetch by its `FetchState`.

use serde::{Deserialize, Serialize};

/// Every path of the protocol starts so; from outside, such a request goes on without the
/// secret and the application answers it as the unknown endpoint it then is.
pub const PATH_PREFIX: &str = "/_ocistore/front/";
/// Where the application takes the records (only with the front's secret).
pub const OBSERVATIONS_PATH: &str = "/_ocistore/front/observations";
/// Where the application answers whether credentials may pull or push (only with the secret).
pub const AUTHORIZE_PATH: &str = "/_ocistore/front/authorize";
/// Carries the front's secret: the application trusts `CLIENT_HEADER` only next to it.
pub const SECRET_HEADER: &str = "x-ocistore-front";
/// The client's address as the front saw it (the application's peer is the unix socket).
pub const CLIENT_HEADER: &str = "x-ocistore-client";
/// On a PUT whose body the front wrote into the upload: how many bytes that was (the
/// application counts them as the request's).
pub const BODY_BYTES_HEADER: &str = "x-ocistore-body-bytes";
/// On a grant: for how many seconds the front may reuse it.
pub const GRANT_SECONDS_HEADER: &str = "x-ocistore-grant-seconds";
/// On a grant: who the credentials name (the access log's `user`).
pub const USER_HEADER: &str = "x-ocistore-user";
/// The longest the application lets the front reuse a grant: a credential revoked (a user
/// removed from htpasswd) still reads and writes blobs through the front for up to this long.
pub const GRANT_SECONDS_MAX: f64 = 10.0;
/// Records the front keeps while the application cannot take them; older ones are dropped.
pub const PENDING_RECORDS_MAX: usize = 100_000;
/// The largest batch of records the application reads (`PENDING_RECORDS_MAX` records are
/// about 15 MB of JSON).
pub const BATCH_BYTES_MAX: usize = 64 * 1024 * 1024;

/// On the application's answer (whose own body is empty): the `TailOrder` the front sends the
/// body by.
pub const TAIL_HEADER: &str = "x-ocistore-tail";

/// What the front streams for a blob being fetched: `length` bytes from `start` of blob
/// `digest` of the cache's repository `name` (as stored).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TailOrder {
    pub name: String,
    pub digest: String,
    pub start: u64,
    pub length: u64,
}

/// The `state` file of a pull-through cache's fetch (`crate::layout::proxy_fetch`): which upload
/// it fetches into and the blob's size, or why it failed (and the status to answer for that);
/// `generation` tells one fetch from the next; `verified`, that the bytes match the digest. Written by the application's fetch, read by it
/// and by the front's tail.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct FetchState {
    pub upload: Option<String>,
    pub size: Option<u64>,
    pub failed: Option<String>,
    pub status: Option<u16>,
    pub generation: String,
    /// The bytes are all there and match the digest (the commit, whose fsync takes a while,
    /// may still be under way): the answers' last bytes may go.
    pub verified: bool,
}

impl FetchState {
    /// None when `bytes` is not a state (a write caught halfway cannot be: states are
    /// replaced whole, by rename).
    pub fn parse(bytes: &[u8]) -> Option<FetchState> {
        let value: serde_json::Value = serde_json::from_slice(bytes).ok()?;
        // serde would take an array for the fields in order: a state is an object.
        value
            .is_object()
            .then(|| serde_json::from_value(value).ok())?
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a state serializes")
    }
}

/// One request the front answered itself, as the application records it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// The application's name for the route (`blob`, `upload`, `upload_start`).
    pub route: String,
    pub method: String,
    pub status: u16,
    /// From the request's arrival to the end of its response.
    pub seconds: f64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub path: String,
    /// The client's address and port.
    pub remote: String,
    pub port: u16,
    /// Who the credentials named, with auth.
    pub user: Option<String>,
}

/// A batch of records as the front posts it.
pub fn write_records(records: &[Record]) -> String {
    serde_json::to_string(records).expect("records serialize")
}

/// A batch of records as the application reads it: objects with named fields only (serde
/// would also take a positional array, the old form this structure replaces).
pub fn read_records(body: &[u8]) -> Result<Vec<Record>, serde_json::Error> {
    let values: Vec<serde_json::Value> = serde_json::from_slice(body)?;
    values
        .into_iter()
        .map(|value| {
            if !value.is_object() {
                return Err(serde::de::Error::custom("a record is a JSON object"));
            }
            serde_json::from_value(value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fetch_states_read_what_the_application_writes() {
        let state = FetchState {
            upload: Some("6f9619ff-8b86-4011-b42d-00c04fc964ff".into()),
            size: Some(42),
            generation: "g".into(),
            verified: true,
            ..FetchState::default()
        };
        assert_eq!(FetchState::parse(state.to_json().as_bytes()), Some(state));
        // Fields left out take their defaults; what is not a state is none.
        let failed = FetchState::parse(br#"{"failed": "404", "status": 404}"#).unwrap();
        assert_eq!(
            (failed.failed.as_deref(), failed.verified),
            (Some("404"), false)
        );
        assert_eq!(FetchState::parse(b"{\"upload\": "), None);
        assert_eq!(FetchState::parse(b"[]"), None);
    }

    #[test]
    fn records_round_trip_with_named_fields() {
        let record = Record {
            route: "blob".into(),
            method: "GET".into(),
            status: 200,
            seconds: 0.25,
            bytes_in: 0,
            bytes_out: 42,
            path: "/v2/a/blobs/sha256:x".into(),
            remote: "127.0.0.1".into(),
            port: 5000,
            user: None,
        };
        let text = write_records(std::slice::from_ref(&record));
        assert!(text.contains("\"bytes_out\":42"), "{text}");
        assert_eq!(read_records(text.as_bytes()).unwrap(), vec![record]);
        assert!(read_records(b"[[\"blob\", \"GET\"]]").is_err());
        let positional = serde_json::to_string(&[serde_json::json!([
            "blob",
            "GET",
            200,
            0.25,
            0,
            42,
            "/v2/a",
            "127.0.0.1",
            5000,
            null
        ])])
        .unwrap();
        assert!(read_records(positional.as_bytes()).is_err());
        assert!(read_records(b"not json").is_err());
    }
}
