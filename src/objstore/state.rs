//! The record of an object-store upload, `<uploads>/<id>/ocistore-upload.json`.
//!
//! It is the one object that says what the upload is: the bytes received so far are the
//! multipart parts it lists followed by the spool object it names, and the hash state inside it
//! covers exactly those bytes. Other objects under the upload (parts uploaded after it, newer
//! spools, `hashstates/`) count only once a state object names them, so writing this object
//! last, with a conditional PUT, makes a checkpoint atomic and lets only one writer go on.

use serde::{Deserialize, Serialize};

use crate::digest::{Algorithm, to_hex};
use crate::hashing::Hasher;

pub use crate::layout::upload::STATE_OBJECT;
pub const STATE_FORMAT: u32 = 1;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    /// 0-based, as object_store numbers parts (S3's part number is this plus one).
    pub part_idx: usize,
    /// What the store answered for the part (the quoted ETag on S3); sent back on completion.
    pub content_id: String,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpoolRecord {
    /// Object name under the upload; unique per checkpoint, so that a stale writer's spool can
    /// never replace the one a newer state names.
    pub name: String,
    pub size: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadState {
    pub format: u32,
    pub algorithm: String,
    /// Bytes received: the parts' sizes plus the spool's.
    pub size: u64,
    /// The running hash after `size` bytes, hex of the same bytes `hashstates/<alg>/<size>`
    /// holds. Kept here too because only this object is written under the lock.
    pub hash_state: String,
    pub multipart_id: Option<String>,
    pub parts: Vec<PartRecord>,
    /// The received bytes after the last part (fewer than a part); None when there are none.
    pub spool: Option<SpoolRecord>,
}

impl UploadState {
    pub fn new(hasher: &Hasher) -> UploadState {
        UploadState {
            format: STATE_FORMAT,
            algorithm: hasher.algorithm().name().to_owned(),
            size: hasher.bytes_hashed(),
            hash_state: to_hex(&hasher.state()),
            multipart_id: None,
            parts: Vec::new(),
            spool: None,
        }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("the upload state serialises")
    }

    /// Parses and checks a state object; the error says what is wrong with it.
    pub fn parse(bytes: &[u8]) -> Result<UploadState, String> {
        let state: UploadState =
            serde_json::from_slice(bytes).map_err(|e| format!("unreadable upload state: {e}"))?;
        if state.format != STATE_FORMAT {
            return Err(format!(
                "upload state format {} is not supported (expected {STATE_FORMAT})",
                state.format
            ));
        }
        let mut received = 0u64;
        for (i, part) in state.parts.iter().enumerate() {
            if part.part_idx != i {
                return Err(format!("part {i} is recorded as part {}", part.part_idx));
            }
            received += part.size;
        }
        if !state.parts.is_empty() && state.multipart_id.is_none() {
            return Err("parts are recorded without a multipart upload".into());
        }
        if let Some(spool) = &state.spool {
            let safe = spool.name.starts_with("spool-")
                && spool.name[6..].chars().all(|c| c.is_ascii_alphanumeric());
            if !safe {
                return Err(format!("invalid spool object name {:?}", spool.name));
            }
            received += spool.size;
        }
        if received != state.size {
            return Err(format!(
                "parts and spool hold {received} bytes but the state says {}",
                state.size
            ));
        }
        let hasher = state.hasher()?;
        if hasher.bytes_hashed() != state.size {
            return Err(format!(
                "the hash state covers {} bytes, not {}",
                hasher.bytes_hashed(),
                state.size
            ));
        }
        Ok(state)
    }

    pub fn hasher(&self) -> Result<Hasher, String> {
        let algorithm = Algorithm::from_name(&self.algorithm)
            .ok_or_else(|| format!("unknown algorithm {:?}", self.algorithm))?;
        let bytes = from_hex(&self.hash_state).ok_or("hash state is not hex")?;
        Hasher::from_state(algorithm, &bytes).map_err(|e| e.to_string())
    }
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> UploadState {
        let mut hasher = Hasher::new(Algorithm::Sha256);
        hasher.update(&vec![7u8; 12_000_005]);
        let mut state = UploadState::new(&hasher);
        state.multipart_id = Some("mp-1".into());
        state.parts = vec![
            PartRecord {
                part_idx: 0,
                content_id: "\"etag-a\"".into(),
                size: 6_000_000,
            },
            PartRecord {
                part_idx: 1,
                content_id: "\"etag-b\"".into(),
                size: 6_000_000,
            },
        ];
        state.spool = Some(SpoolRecord {
            name: "spool-0123abcd".into(),
            size: 5,
        });
        state
    }

    #[test]
    fn round_trips() {
        let state = sample();
        let parsed = UploadState::parse(&state.to_json()).unwrap();
        assert_eq!(parsed, state);
        let mut expected = Hasher::new(Algorithm::Sha256);
        expected.update(&vec![7u8; 12_000_005]);
        assert_eq!(parsed.hasher().unwrap().digest(), expected.digest());
    }

    #[test]
    fn refuses_inconsistent_states() {
        let json = |f: &dyn Fn(&mut UploadState)| {
            let mut s = sample();
            f(&mut s);
            UploadState::parse(&s.to_json())
        };
        assert!(json(&|s| s.format = 2).is_err());
        assert!(json(&|s| s.size += 1).is_err());
        assert!(json(&|s| s.parts[1].part_idx = 2).is_err());
        assert!(json(&|s| s.multipart_id = None).is_err());
        assert!(json(&|s| s.spool.as_mut().unwrap().name = "../x".into()).is_err());
        assert!(json(&|s| s.hash_state.push('0')).is_err());
        assert!(json(&|s| s.algorithm = "md5".into()).is_err());
        assert!(UploadState::parse(b"{").is_err());
    }
}
