//! Object keys: callers name objects relative to the root directory, and nothing they pass may
//! reach outside it or alias another key.

use object_store::path::Path;

use crate::error::{Result, StoreError};

pub use crate::layout::check_key;

/// A listing prefix: a key, or "" for the whole root directory. One trailing '/' is allowed,
/// as in a directory name.
pub fn check_prefix(prefix: &str) -> Result<&str> {
    if prefix.is_empty() {
        return Ok(prefix);
    }
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    check_key(if trimmed.is_empty() { prefix } else { trimmed })?;
    Ok(trimmed)
}

/// The configured root directory with its slashes trimmed, as distribution's S3 driver trims
/// `rootdirectory`.
pub fn normalize_root(root: &str) -> Result<String> {
    let trimmed = root.trim_matches('/');
    if !trimmed.is_empty() {
        check_key(trimmed)
            .map_err(|e| StoreError::Value(format!("invalid root_directory {root:?}: {e}")))?;
    }
    Ok(trimmed.to_owned())
}

/// Maps keys relative to the root directory to full object paths and back.
#[derive(Clone, Debug)]
pub struct Root {
    dir: String,
}

impl Root {
    pub fn new(root_directory: &str) -> Result<Root> {
        Ok(Root {
            dir: normalize_root(root_directory)?,
        })
    }

    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// The full path of a key that `check_key` (or `check_prefix`) accepted; "" is the root.
    pub fn path(&self, key: &str) -> Result<Path> {
        let full = match (self.dir.is_empty(), key.is_empty()) {
            (true, _) => key.to_owned(),
            (false, true) => self.dir.clone(),
            (false, false) => format!("{}/{key}", self.dir),
        };
        Path::parse(&full)
            .map_err(|e| StoreError::Value(format!("invalid object key {key:?}: {e}")))
    }

    /// The key of `path` relative to the root directory (None for objects outside it).
    pub fn relative(&self, path: &Path) -> Option<String> {
        let full = path.as_ref();
        if self.dir.is_empty() {
            return Some(full.to_owned());
        }
        full.strip_prefix(self.dir.as_str())?
            .strip_prefix('/')
            .map(str::to_owned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_traversal_and_aliases() {
        for bad in [
            "", "/abs", "a//b", "a/", "./a", "a/..", "a/../b", "..", "a/\u{7}b",
        ] {
            assert!(
                matches!(check_key(bad), Err(StoreError::Value(_))),
                "{bad:?} accepted"
            );
        }
        for good in [
            "a",
            "docker/registry/v2/repositories/x/_layers",
            "a/.b/c..d",
            "a/b c",
        ] {
            check_key(good).unwrap();
        }
    }

    #[test]
    fn prefixes_may_be_empty_or_end_in_a_slash() {
        assert_eq!(check_prefix("").unwrap(), "");
        assert_eq!(check_prefix("a/b/").unwrap(), "a/b");
        assert!(check_prefix("/").is_err());
        assert!(check_prefix("a//").is_err());
    }

    #[test]
    fn root_directory_is_trimmed_and_prefixed() {
        let root = Root::new("/reg/sub/").unwrap();
        assert_eq!(root.dir(), "reg/sub");
        let path = root.path("docker/registry/v2/x").unwrap();
        assert_eq!(path.as_ref(), "reg/sub/docker/registry/v2/x");
        assert_eq!(root.relative(&path).unwrap(), "docker/registry/v2/x");
        assert_eq!(root.path("").unwrap().as_ref(), "reg/sub");
        assert!(root.relative(&Path::from("reg/subway/x")).is_none());

        let bare = Root::new("").unwrap();
        assert_eq!(bare.path("a/b").unwrap().as_ref(), "a/b");
        assert_eq!(bare.relative(&Path::from("a/b")).unwrap(), "a/b");
        assert!(Root::new("a/../b").is_err());
        assert_eq!(Root::new("///").unwrap().dir(), "");
    }
}
