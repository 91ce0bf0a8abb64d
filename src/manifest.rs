//! What the registry tells of a stored manifest without its schema: its media type, as the
//! application's parser and the native front both read it.

/// OCI's image index and manifest: what an OCI manifest without `mediaType` is, by its shape.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// What a `schemaVersion: 1` document is reported as (the registry refuses it).
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";

/// The media type a manifest's payload declares (`mediaType`), or, for OCI manifests that
/// leave it out, the one its shape tells (`manifests`: an index; `config`: an image manifest);
/// Docker schema 1 for `schemaVersion: 1`. None when the payload is no JSON object or tells
/// nothing.
pub fn media_type(payload: &[u8]) -> Option<String> {
    let doc: serde_json::Value = serde_json::from_slice(payload).ok()?;
    let doc = doc.as_object()?;
    if doc.get("schemaVersion").and_then(|v| v.as_i64()) == Some(1) {
        return Some(DOCKER_SCHEMA1.to_owned());
    }
    match doc.get("mediaType").and_then(|v| v.as_str()) {
        Some(declared) if !declared.is_empty() => Some(declared.to_owned()),
        _ if doc.contains_key("manifests") => Some(OCI_INDEX.to_owned()),
        _ if doc.contains_key("config") => Some(OCI_MANIFEST.to_owned()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_then_shape() {
        let declared = br#"{"schemaVersion":2,"mediaType":"application/x","config":{}}"#;
        assert_eq!(media_type(declared).as_deref(), Some("application/x"));
        assert_eq!(
            media_type(br#"{"manifests":[]}"#).as_deref(),
            Some(OCI_INDEX)
        );
        assert_eq!(
            media_type(br#"{"mediaType":"","config":{}}"#).as_deref(),
            Some(OCI_MANIFEST)
        );
        assert_eq!(
            media_type(br#"{"schemaVersion":1}"#).as_deref(),
            Some(DOCKER_SCHEMA1)
        );
        assert_eq!(media_type(br#"{"layers":[]}"#), None);
        assert_eq!(media_type(b"[1]"), None);
        assert_eq!(media_type(b"not json"), None);
    }
}
