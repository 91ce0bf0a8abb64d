//! A repository's tags as the layout keeps them (`layout::tags`): which exist, which point at
//! a manifest, and how one is removed. One owner for the native front and the application's
//! `TagService` (distribution's `tagStore`).

use crate::digest::Digest;
use crate::error::Result;
use crate::layout;
use crate::linked::read_link;
use crate::storage::LinkStore;

/// The parts whose presence makes a repository known, though it has no tag yet.
const KNOWN_BY: [&str; 3] = ["_manifests", "_layers", "_uploads"];

/// The tags of repository `name`, sorted: those whose current link holds a digest (a tag
/// directory left without one is no tag). None when the repository is not known at all.
pub fn tags(links: &dyn LinkStore, name: &str) -> Result<Option<Vec<String>>> {
    let names = links.list(&layout::tags(name))?;
    if names.is_empty() && !repository_exists(links, name)? {
        return Ok(None);
    }
    let mut found = Vec::with_capacity(names.len());
    for tag in names {
        if read_link(links, &layout::tag_current_link(name, &tag))?.is_some() {
            found.push(tag);
        }
    }
    Ok(Some(found))
}

/// Whether repository `name` has anything stored: manifests, linked blobs or uploads.
pub fn repository_exists(links: &dyn LinkStore, name: &str) -> Result<bool> {
    let repository = layout::repository(name);
    for part in KNOWN_BY {
        if links.exists(&format!("{repository}/{part}"))? {
            return Ok(true);
        }
    }
    Ok(false)
}

/// The tags of repository `name` that point at `digest`, sorted.
pub fn tagged(links: &dyn LinkStore, name: &str, digest: &Digest) -> Result<Vec<String>> {
    let mut found = Vec::new();
    for tag in links.list(&layout::tags(name))? {
        if read_link(links, &layout::tag_current_link(name, &tag))?.as_ref() == Some(digest) {
            found.push(tag);
        }
    }
    Ok(found)
}

/// Removes tag `tag` of repository `name` with its history (the manifests it pointed at stay);
/// false when there is no such tag.
pub fn untag(links: &dyn LinkStore, name: &str, tag: &str) -> Result<bool> {
    if read_link(links, &layout::tag_current_link(name, tag))?.is_none() {
        return Ok(false);
    }
    links.delete(&layout::tag_dir(name, tag))
}
