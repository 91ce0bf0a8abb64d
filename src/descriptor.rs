//! OCI content descriptors as they come on the wire: which fields a descriptor needs, their
//! types and ranges, and the words of each refusal. The application's `Descriptor.from_dict` and
//! `from_json`, its manifest parser and the native front all read descriptors through here.

use serde_json::{Map, Value};

use crate::digest::Digest;
use crate::error::StoreError;

/// The largest size a descriptor may give: Go's `int64`, which distribution and every Go client
/// decode it into (a larger one would be a different number to them).
pub const SIZE_MAX: u64 = i64::MAX as u64;

/// Why a descriptor was refused.
#[derive(Debug)]
pub enum DescriptorError {
    /// Not a descriptor (`ErrDescriptorInvalid`): the message says which field and why.
    Invalid(String),
    /// Its `digest` is no digest (the digest's own error, as `Digest::parse` words it).
    Digest(StoreError),
}

impl DescriptorError {
    /// The refusal with `where` (`config`, `layers[2]`) before an invalid descriptor's message.
    pub fn within(self, place: &str) -> DescriptorError {
        match self {
            DescriptorError::Invalid(message) => {
                DescriptorError::Invalid(format!("{place}: {message}"))
            }
            digest => digest,
        }
    }
}

fn bad(message: impl Into<String>) -> DescriptorError {
    DescriptorError::Invalid(message.into())
}

/// A platform (`platform` of an index's entry).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub architecture: String,
    pub os: String,
    pub os_version: Option<String>,
    pub os_features: Option<Vec<String>>,
    pub variant: Option<String>,
    pub features: Option<Vec<String>>,
}

/// A descriptor; fields absent on the wire are None (present but empty ones stay present).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Descriptor {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    pub urls: Option<Vec<String>>,
    /// In key order (the application writes them sorted, as Go does).
    pub annotations: Option<Vec<(String, String)>>,
    pub data: Option<Vec<u8>>,
    pub platform: Option<Platform>,
    pub artifact_type: Option<String>,
}

/// What Python calls a JSON value's type, for messages the application worded first.
pub fn python_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

/// Why a document could not be read as JSON, in the words the registry uses for `what` (`a
/// manifest`, `descriptor`): nesting past the parser's limit is told apart from other errors.
pub fn json_problem(what: &str, error: &serde_json::Error) -> String {
    if error.to_string().starts_with("recursion limit exceeded") {
        format!("{what} is nested too deeply")
    } else {
        format!("{what} is not valid JSON: {error}")
    }
}

fn string(
    d: &Map<String, Value>,
    key: &str,
    required: bool,
) -> Result<Option<String>, DescriptorError> {
    match d.get(key) {
        None if required => Err(bad(format!("descriptor field '{key}' is required"))),
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(bad(format!(
            "descriptor field '{key}' must be a string, not {}",
            python_type_name(other)
        ))),
    }
}

fn string_list(d: &Map<String, Value>, key: &str) -> Result<Option<Vec<String>>, DescriptorError> {
    let Some(value) = d.get(key) else {
        return Ok(None);
    };
    value
        .as_array()
        .and_then(|items| {
            items
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
        })
        .map(Some)
        .ok_or_else(|| {
            bad(format!(
                "descriptor field '{key}' must be a list of strings"
            ))
        })
}

/// A JSON object of strings to strings, in key order; None when `value` is not one.
pub fn string_map(value: &Value) -> Option<Vec<(String, String)>> {
    value
        .as_object()?
        .iter()
        .map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect()
}

impl Platform {
    pub fn from_value(value: &Value) -> Result<Platform, DescriptorError> {
        let d = value
            .as_object()
            .ok_or_else(|| bad("platform must be an object"))?;
        Ok(Platform {
            architecture: string(d, "architecture", true)?.unwrap_or_default(),
            os: string(d, "os", true)?.unwrap_or_default(),
            os_version: string(d, "os.version", false)?,
            os_features: string_list(d, "os.features")?,
            variant: string(d, "variant", false)?,
            features: string_list(d, "features")?,
        })
    }
}

/// The size a descriptor gives, which must be an integer from 0 to `SIZE_MAX`.
fn size(value: &Value) -> Result<u64, DescriptorError> {
    let out_of_range = |shown: String| {
        bad(format!(
            "descriptor size must be an integer from 0 to {SIZE_MAX} (Go's int64), not {shown}"
        ))
    };
    let Value::Number(n) = value else {
        return Err(bad("descriptor field 'size' must be an integer"));
    };
    if let Some(size) = n.as_u64() {
        return if size <= SIZE_MAX {
            Ok(size)
        } else {
            Err(out_of_range(size.to_string()))
        };
    }
    if let Some(negative) = n.as_i64() {
        return Err(out_of_range(negative.to_string()));
    }
    // The parser reads an integer past 64 bits as a float: an integer all the same, too large.
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() >= 9.2e18 => Err(out_of_range(format!("{f:.0}"))),
        _ => Err(bad("descriptor field 'size' must be an integer")),
    }
}

impl Descriptor {
    /// A descriptor from its JSON value, checked field by field in the order the application
    /// always has (so the first problem named is the same one).
    pub fn from_value(value: &Value) -> Result<Descriptor, DescriptorError> {
        let d = value
            .as_object()
            .ok_or_else(|| bad("a descriptor must be a JSON object"))?;
        let digest_text = string(d, "digest", true)?.unwrap_or_default();
        let size_value = d
            .get("size")
            .ok_or_else(|| bad("descriptor field 'size' is required"))?;
        if !matches!(size_value, Value::Number(_)) {
            return Err(bad("descriptor field 'size' must be an integer"));
        }
        let data = match string(d, "data", false)? {
            None => None,
            Some(encoded) => Some(
                base64_decode(&encoded)
                    .map_err(|why| bad(format!("descriptor field 'data' is not base64: {why}")))?,
            ),
        };
        let media_type = string(d, "mediaType", true)?.unwrap_or_default();
        let digest = Digest::parse(&digest_text).map_err(DescriptorError::Digest)?;
        let urls = string_list(d, "urls")?;
        let annotations = match d.get("annotations") {
            None => None,
            Some(value) => Some(string_map(value).ok_or_else(|| {
                bad("descriptor field 'annotations' must map strings to strings")
            })?),
        };
        let platform = match d.get("platform") {
            None | Some(Value::Null) => None,
            Some(value) => Some(Platform::from_value(value)?),
        };
        let artifact_type = string(d, "artifactType", false)?;
        let size = size(size_value)?;
        Ok(Descriptor {
            media_type,
            digest,
            size,
            urls,
            annotations,
            data,
            platform,
            artifact_type,
        })
    }

    /// A descriptor from a JSON document.
    pub fn from_json(payload: &[u8]) -> Result<Descriptor, DescriptorError> {
        let value: Value = serde_json::from_slice(payload).map_err(|e| {
            bad(if e.to_string().starts_with("recursion limit exceeded") {
                "descriptor is nested too deeply".to_owned()
            } else {
                format!("descriptor is not JSON: {e}")
            })
        })?;
        Descriptor::from_value(&value)
    }
}

/// Standard base64 with padding, as Python's `b64decode(validate=True)` and Go's
/// `encoding/base64.StdEncoding` take it (`data` of a descriptor).
pub fn base64_decode(text: &str) -> Result<Vec<u8>, String> {
    fn sextet(c: u8) -> Option<u8> {
        match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return Err(format!("length {} is not a multiple of 4", bytes.len()));
    }
    let padding = bytes.iter().rev().take_while(|&&c| c == b'=').count();
    if padding > 2 {
        return Err("more than two '=' at the end".to_owned());
    }
    let body = &bytes[..bytes.len() - padding];
    let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for (i, &c) in body.iter().enumerate() {
        let value = sextet(c).ok_or_else(|| format!("character {:?} at {i}", c as char))?;
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

    fn parse(text: &str) -> Result<Descriptor, DescriptorError> {
        Descriptor::from_json(text.as_bytes())
    }

    fn refusal(text: &str) -> String {
        match parse(text) {
            Err(DescriptorError::Invalid(message)) => message,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn every_field() {
        let d = parse(&format!(
            r#"{{"mediaType":"m","digest":"{DIGEST}","size":5,"urls":["http://x"],
            "annotations":{{"b":"2","a":"1"}},"data":"aGVsbG8=","platform":{{"architecture":
            "amd64","os":"linux","os.features":["f"]}},"artifactType":"t"}}"#
        ))
        .unwrap();
        assert_eq!(d.media_type, "m");
        assert_eq!(d.digest.to_string(), DIGEST);
        assert_eq!(d.size, 5);
        assert_eq!(d.urls, Some(vec!["http://x".to_owned()]));
        let sorted = vec![
            ("a".to_owned(), "1".to_owned()),
            ("b".to_owned(), "2".to_owned()),
        ];
        assert_eq!(d.annotations, Some(sorted));
        assert_eq!(d.data.as_deref(), Some(&b"hello"[..]));
        let platform = d.platform.unwrap();
        assert_eq!(
            (platform.architecture.as_str(), platform.os.as_str()),
            ("amd64", "linux")
        );
        assert_eq!(platform.os_features, Some(vec!["f".to_owned()]));
        assert_eq!(platform.variant, None);
        assert_eq!(d.artifact_type.as_deref(), Some("t"));
    }

    #[test]
    fn refusals_name_the_field() {
        let cases = [
            (
                format!(r#"{{"digest":"{DIGEST}","size":1}}"#),
                "'mediaType' is required",
            ),
            (
                r#"{"mediaType":"x","size":1}"#.to_owned(),
                "'digest' is required",
            ),
            (
                format!(r#"{{"mediaType":"x","digest":"{DIGEST}"}}"#),
                "'size' is required",
            ),
            (
                format!(r#"{{"mediaType":"x","digest":"{DIGEST}","size":-1}}"#),
                "not -1",
            ),
            (
                format!(r#"{{"mediaType":"x","digest":"{DIGEST}","size":9223372036854775808}}"#),
                "not 9223372036854775808",
            ),
            (
                format!(r#"{{"mediaType":"x","digest":"{DIGEST}","size":18446744073709551616}}"#),
                "not 18446744073709551616",
            ),
            (
                format!(r#"{{"mediaType":"x","digest":"{DIGEST}","size":"1"}}"#),
                "integer",
            ),
            (
                format!(r#"{{"mediaType":"x","digest":"{DIGEST}","size":true}}"#),
                "integer",
            ),
            (
                format!(r#"{{"mediaType":"x","digest":"{DIGEST}","size":1.5}}"#),
                "integer",
            ),
            (
                format!(r#"{{"mediaType":1,"digest":"{DIGEST}","size":1}}"#),
                "not int",
            ),
            (
                format!(r#"{{"mediaType":"x","digest":"{DIGEST}","size":1,"urls":"u"}}"#),
                "list of strings",
            ),
            (
                format!(
                    r#"{{"mediaType":"x","digest":"{DIGEST}","size":1,"annotations":{{"a":1}}}}"#
                ),
                "map strings to strings",
            ),
            (
                format!(r#"{{"mediaType":"x","digest":"{DIGEST}","size":1,"data":"no!"}}"#),
                "not base64",
            ),
            (
                format!(
                    r#"{{"mediaType":"x","digest":"{DIGEST}","size":1,"platform":{{"os":"l"}}}}"#
                ),
                "'architecture' is required",
            ),
            ("[]".to_owned(), "a descriptor must be a JSON object"),
            ("{not json".to_owned(), "descriptor is not JSON"),
            (
                format!("{}1{}", r#"{"a":"#.repeat(200), "}".repeat(200)),
                "descriptor is nested too deeply",
            ),
        ];
        for (text, expected) in cases {
            let message = refusal(&text);
            assert!(message.contains(expected), "{text}: {message}");
        }
    }

    #[test]
    fn a_bad_digest_is_the_digest_error() {
        let text = r#"{"mediaType":"x","digest":"sha256:zz","size":1}"#;
        assert!(matches!(parse(text), Err(DescriptorError::Digest(_))));
    }

    #[test]
    fn base64_as_the_standard_encoding() {
        assert_eq!(base64_decode("").unwrap(), b"");
        assert_eq!(base64_decode("aGk=").unwrap(), b"hi");
        assert_eq!(base64_decode("aGVsbG8h").unwrap(), b"hello!");
        assert_eq!(base64_decode("+/8=").unwrap(), [0xfb, 0xff]);
        for bad in ["aGk", "a===", "aG=k", "aGk-", "aG k"] {
            assert!(base64_decode(bad).is_err(), "{bad}");
        }
    }
}
