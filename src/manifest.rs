//! The built-in manifest schemas (OCI image manifest and index, Docker schema2 manifest and
//! manifest list): how a pushed manifest's media type is told, what each schema requires, and
//! the words of each refusal. The application's `unmarshal_manifest` and the native front both
//! parse manifests here; schemas the application registers itself are its own.

use serde_json::{Map, Value};

use crate::descriptor::{self, Descriptor, DescriptorError};
use crate::error::StoreError;

/// OCI's image index and manifest: what an OCI manifest without `mediaType` is, by its shape.
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// What a `schemaVersion: 1` document is reported as (the registry refuses it).
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
/// The schemas parsed here.
pub const BUILT_IN: [&str; 4] = [
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
];
/// Content types that say nothing of the schema: the payload's own `mediaType` decides.
const GENERIC_CONTENT_TYPES: [&str; 4] = [
    "",
    "application/json",
    "text/plain",
    "application/octet-stream",
];

/// The media type a manifest's payload declares (`mediaType`), or, for OCI manifests that
/// leave it out, the one its shape tells (`manifests`: an index; `config`: an image manifest);
/// Docker schema 1 for `schemaVersion: 1`. None when the payload is no JSON object or tells
/// nothing.
pub fn media_type(payload: &[u8]) -> Option<String> {
    let doc: Value = serde_json::from_slice(payload).ok()?;
    media_type_of(doc.as_object()?)
}

fn media_type_of(doc: &Map<String, Value>) -> Option<String> {
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

/// Why a pushed manifest was refused.
#[derive(Debug)]
pub enum ManifestError {
    /// `MANIFEST_INVALID` (`ErrManifestInvalid`).
    Invalid(String),
    /// Docker schema 1, which the registry does not take (`ErrSchemaV1Unsupported`).
    SchemaV1(String),
    /// A descriptor's digest is no digest (the digest's own error).
    Digest(StoreError),
}

impl From<DescriptorError> for ManifestError {
    fn from(error: DescriptorError) -> ManifestError {
        match error {
            DescriptorError::Invalid(message) => ManifestError::Invalid(message),
            DescriptorError::Digest(error) => ManifestError::Digest(error),
        }
    }
}

/// What a schema holds besides what every manifest does.
#[derive(Debug)]
pub enum Schema {
    /// An image manifest: a config and layers.
    Image {
        config: Box<Descriptor>,
        layers: Vec<Descriptor>,
    },
    /// An index: other manifests.
    Index { manifests: Vec<Descriptor> },
}

/// A manifest of a built-in schema.
#[derive(Debug)]
pub struct Manifest {
    pub media_type: String,
    pub annotations: Option<Vec<(String, String)>>,
    pub artifact_type: Option<String>,
    pub subject: Option<Descriptor>,
    pub schema: Schema,
}

impl Manifest {
    /// Every descriptor the manifest references: config and layers, or its manifests.
    pub fn references(&self) -> impl Iterator<Item = &Descriptor> {
        let (first, rest) = match &self.schema {
            Schema::Image { config, layers } => (Some(&**config), layers.as_slice()),
            Schema::Index { manifests } => (None, manifests.as_slice()),
        };
        first.into_iter().chain(rest)
    }
}

/// A pushed manifest: of a built-in schema, parsed; or of another media type, which only the
/// application may know (a schema it registered), with the payload checked to be a JSON object.
#[derive(Debug)]
pub enum Pushed {
    BuiltIn(Box<Manifest>),
    Other { media_type: String },
}

/// The media type a `Content-Type` names, without parameters and in lowercase.
pub fn content_media_type(content_type: Option<&str>) -> String {
    let value = content_type.unwrap_or("");
    value.split(';').next().unwrap_or("").trim().to_lowercase()
}

/// A JSON value as Python's `repr` shows it, for messages the application worded first.
fn python_repr(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => "None".to_owned(),
        Some(Value::Bool(true)) => "True".to_owned(),
        Some(Value::Bool(false)) => "False".to_owned(),
        Some(Value::String(s)) if s.contains('\'') && !s.contains('"') => format!("\"{s}\""),
        Some(Value::String(s)) => format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'")),
        Some(other) => other.to_string(),
    }
}

fn invalid(message: impl Into<String>) -> ManifestError {
    ManifestError::Invalid(message.into())
}

/// A manifest pushed with `content_type`: its schema told by the content type, or by the payload
/// when the content type says nothing of it, then checked against that schema.
pub fn parse_pushed(content_type: Option<&str>, payload: &[u8]) -> Result<Pushed, ManifestError> {
    let mut media_type = content_media_type(content_type);
    if media_type == DOCKER_SCHEMA1 || media_type == DOCKER_SCHEMA1_SIGNED {
        return Err(ManifestError::SchemaV1(format!(
            "{media_type} (Docker schema1) is not supported"
        )));
    }
    let doc: Value = serde_json::from_slice(payload)
        .map_err(|e| invalid(descriptor::json_problem("manifest", &e)))?;
    let doc = doc
        .as_object()
        .ok_or_else(|| invalid("a manifest must be a JSON object"))?;
    if GENERIC_CONTENT_TYPES.contains(&media_type.as_str()) {
        media_type = media_type_of(doc).ok_or_else(|| {
            invalid("cannot tell the manifest's media type: no Content-Type and no mediaType")
        })?;
        if media_type == DOCKER_SCHEMA1 {
            return Err(ManifestError::SchemaV1(
                "Docker schema1 manifests are not supported".to_owned(),
            ));
        }
    }
    if !BUILT_IN.contains(&media_type.as_str()) {
        return Ok(Pushed::Other { media_type });
    }
    Ok(Pushed::BuiltIn(Box::new(parse_built_in(media_type, doc)?)))
}

fn descriptor_at(value: &Value, place: &str) -> Result<Descriptor, ManifestError> {
    Ok(Descriptor::from_value(value).map_err(|e| e.within(place))?)
}

fn descriptors_at(items: &[Value], field: &str) -> Result<Vec<Descriptor>, ManifestError> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| descriptor_at(item, &format!("{field}[{i}]")))
        .collect()
}

fn parse_built_in(media_type: String, doc: &Map<String, Value>) -> Result<Manifest, ManifestError> {
    // What every schema has, checked first and in this order.
    let version = doc.get("schemaVersion");
    if version.and_then(Value::as_f64) != Some(2.0) || matches!(version, Some(Value::Bool(_))) {
        return Err(invalid(format!(
            "{media_type}: schemaVersion must be 2, got {}",
            python_repr(version)
        )));
    }
    match doc.get("mediaType") {
        None | Some(Value::Null) => {}
        Some(Value::String(declared)) if *declared == media_type => {}
        Some(declared) => {
            return Err(invalid(format!(
                "mediaType in manifest is {}, but it was sent as {}",
                python_repr(Some(declared)),
                python_repr(Some(&Value::String(media_type.clone())))
            )));
        }
    }
    let annotations = match doc.get("annotations") {
        None | Some(Value::Null) => None,
        Some(value) => Some(
            descriptor::string_map(value)
                .ok_or_else(|| invalid("annotations must map strings to strings"))?,
        ),
    };
    let artifact_type = match doc.get("artifactType") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(invalid("artifactType must be a string")),
    };
    let subject = match doc.get("subject") {
        None | Some(Value::Null) => None,
        Some(value) => Some(descriptor_at(value, "subject")?),
    };
    let schema = if media_type == OCI_MANIFEST || media_type == DOCKER_MANIFEST {
        let config = doc
            .get("config")
            .ok_or_else(|| invalid(format!("{media_type}: config is required")))?;
        let layers = match doc.get("layers") {
            None => &[][..],
            Some(Value::Array(layers)) => layers.as_slice(),
            Some(_) => return Err(invalid("layers must be a list")),
        };
        let artifact_typed = artifact_type.as_deref().is_some_and(|t| !t.is_empty());
        if media_type == DOCKER_MANIFEST && (subject.is_some() || artifact_typed) {
            return Err(invalid(
                "Docker schema2 manifests have no subject or artifactType",
            ));
        }
        Schema::Image {
            config: Box::new(descriptor_at(config, "config")?),
            layers: descriptors_at(layers, "layers")?,
        }
    } else {
        let Some(Value::Array(manifests)) = doc.get("manifests") else {
            return Err(invalid(format!("{media_type}: manifests must be a list")));
        };
        Schema::Index {
            manifests: descriptors_at(manifests, "manifests")?,
        }
    };
    Ok(Manifest {
        media_type,
        annotations,
        artifact_type,
        subject,
        schema,
    })
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

    const DIGEST: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    fn descriptor(media_type: &str) -> String {
        format!(r#"{{"mediaType":"{media_type}","digest":"{DIGEST}","size":5}}"#)
    }

    fn refusal(content_type: Option<&str>, payload: &str) -> String {
        match parse_pushed(content_type, payload.as_bytes()) {
            Err(ManifestError::Invalid(message)) => message,
            other => panic!("{payload}: {other:?}"),
        }
    }

    #[test]
    fn an_image_manifest_and_its_references() {
        let payload = format!(
            r#"{{"schemaVersion":2,"config":{},"layers":[{},{}],"subject":{},
            "annotations":{{"k":"v"}},"artifactType":"a"}}"#,
            descriptor("c"),
            descriptor("l1"),
            descriptor("l2"),
            descriptor(OCI_MANIFEST)
        );
        let Ok(Pushed::BuiltIn(manifest)) =
            parse_pushed(Some("application/json"), payload.as_bytes())
        else {
            panic!("not parsed");
        };
        assert_eq!(manifest.media_type, OCI_MANIFEST);
        let types: Vec<_> = manifest
            .references()
            .map(|d| d.media_type.as_str())
            .collect();
        assert_eq!(types, ["c", "l1", "l2"]);
        assert_eq!(manifest.subject.unwrap().media_type, OCI_MANIFEST);
        assert_eq!(manifest.artifact_type.as_deref(), Some("a"));
        assert_eq!(
            manifest.annotations,
            Some(vec![("k".to_owned(), "v".to_owned())])
        );
    }

    #[test]
    fn an_index_by_content_type_with_parameters() {
        let payload = format!(r#"{{"schemaVersion":2,"manifests":[{}]}}"#, descriptor("m"));
        let content_type = Some("Application/VND.oci.image.index.v1+json; charset=utf-8");
        let Ok(Pushed::BuiltIn(index)) = parse_pushed(content_type, payload.as_bytes()) else {
            panic!("not parsed");
        };
        assert!(matches!(index.schema, Schema::Index { ref manifests } if manifests.len() == 1));
    }

    #[test]
    fn other_media_types_are_the_applications() {
        let pushed = parse_pushed(Some("application/x-mine"), b"{}").unwrap();
        assert!(
            matches!(pushed, Pushed::Other { media_type } if media_type == "application/x-mine")
        );
        assert_eq!(
            refusal(Some("application/x-mine"), "[]"),
            "a manifest must be a JSON object"
        );
    }

    #[test]
    fn schema1_is_refused_sent_or_sniffed() {
        for (content_type, payload) in [
            (Some(DOCKER_SCHEMA1_SIGNED), "{}"),
            (None, r#"{"schemaVersion":1}"#),
        ] {
            let pushed = parse_pushed(content_type, payload.as_bytes());
            assert!(
                matches!(pushed, Err(ManifestError::SchemaV1(_))),
                "{payload}"
            );
        }
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let config = descriptor("c");
        let cases = [
            (
                Some(OCI_MANIFEST),
                "not json".to_owned(),
                "manifest is not valid JSON",
            ),
            (
                Some(OCI_MANIFEST),
                format!("{}1{}", "[".repeat(300), "]".repeat(300)),
                "nested too deeply",
            ),
            (
                Some(OCI_MANIFEST),
                r#"{"schemaVersion":3,"config":{}}"#.to_owned(),
                "schemaVersion must be 2, got 3",
            ),
            (
                Some(OCI_MANIFEST),
                r#"{"config":{}}"#.to_owned(),
                "got None",
            ),
            (
                Some(OCI_MANIFEST),
                format!(r#"{{"schemaVersion":2,"mediaType":"{OCI_INDEX}"}}"#),
                "but it was sent as",
            ),
            (
                Some(OCI_MANIFEST),
                r#"{"schemaVersion":2}"#.to_owned(),
                "config is required",
            ),
            (
                Some(OCI_MANIFEST),
                r#"{"schemaVersion":2,"config":{"mediaType":"x"}}"#.to_owned(),
                "config: descriptor field 'digest'",
            ),
            (
                Some(OCI_MANIFEST),
                format!(r#"{{"schemaVersion":2,"config":{config},"layers":{{}}}}"#),
                "layers must be a list",
            ),
            (
                Some(OCI_MANIFEST),
                format!(r#"{{"schemaVersion":2,"config":{config},"layers":[{config},1]}}"#),
                "layers[1]: a descriptor",
            ),
            (
                Some(OCI_MANIFEST),
                format!(r#"{{"schemaVersion":2,"config":{config},"annotations":{{"a":1}}}}"#),
                "annotations must map",
            ),
            (
                Some(OCI_MANIFEST),
                format!(r#"{{"schemaVersion":2,"config":{config},"artifactType":1}}"#),
                "artifactType must be a string",
            ),
            (
                Some(DOCKER_MANIFEST),
                format!(r#"{{"schemaVersion":2,"config":{config},"artifactType":"a"}}"#),
                "Docker schema2",
            ),
            (
                Some(OCI_INDEX),
                r#"{"schemaVersion":2,"manifests":"x"}"#.to_owned(),
                "manifests must be a list",
            ),
            (
                Some(OCI_INDEX),
                r#"{"schemaVersion":2,"manifests":[{"size":1}]}"#.to_owned(),
                "manifests[0]: ",
            ),
            (None, r#"{"schemaVersion":2}"#.to_owned(), "cannot tell"),
        ];
        for (content_type, payload, expected) in cases {
            let message = refusal(content_type, &payload);
            assert!(message.contains(expected), "{payload}: {message}");
        }
    }

    #[test]
    fn a_bad_digest_in_a_layer_is_the_digest_error() {
        let payload =
            r#"{"schemaVersion":2,"config":{"mediaType":"c","digest":"sha256:zz","size":1}}"#;
        let pushed = parse_pushed(Some(OCI_MANIFEST), payload.as_bytes());
        assert!(matches!(pushed, Err(ManifestError::Digest(_))));
    }
}
