//! Links and the GC protocol on object storage (`crate::storage::LinkStore`): a PUT replaces an
//! object atomically; marks, claims and the collector's lease are `super::gc`'s.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::client::Remote;
use super::gc::{self, ObjectClaim, ObjectLease};
use super::runtime::block_on;
use crate::error::Result;
use crate::storage::{GcClaim, GcLease, Hold, LinkStore};

pub struct ObjectLinks {
    remote: Arc<Remote>,
}

impl ObjectLinks {
    pub fn new(remote: Arc<Remote>) -> ObjectLinks {
        ObjectLinks { remote }
    }
}

impl LinkStore for ObjectLinks {
    fn read(&self, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(block_on(self.remote.read(key))?.map(|(bytes, _)| bytes.to_vec()))
    }

    fn write(&self, key: &str, data: &[u8]) -> Result<()> {
        block_on(self.remote.write(key, Bytes::copy_from_slice(data)))?;
        Ok(())
    }

    fn mark(&self, key: &str) -> Result<bool> {
        block_on(gc::mark(&self.remote, key))
    }

    fn list(&self, key: &str) -> Result<Vec<String>> {
        block_on(self.remote.list(key))
    }

    fn exists(&self, key: &str) -> Result<bool> {
        // Objects, not prefixes: some servers (SeaweedFS) keep listing a prefix after
        // everything under it is deleted.
        if block_on(self.remote.head(key))?.is_some() {
            return Ok(true);
        }
        block_on(self.remote.any_under(key))
    }

    fn delete(&self, key: &str) -> Result<bool> {
        block_on(self.remote.delete_tree(key))
    }

    fn prune_empty(&self, _key: &str, _stop: &str) -> Result<()> {
        Ok(()) // a prefix with nothing under it does not exist on object storage
    }

    fn gc_lock(&self, _exclusive: bool) -> Result<Hold> {
        Ok(Box::new(()))
    }

    fn gc_claim(&self, key: &str) -> Result<Box<dyn GcClaim>> {
        Ok(Box::new(ObjectClaim::take(self.remote.clone(), key)?))
    }

    fn gc_lease(
        &self,
        owner: &str,
        ttl: Duration,
    ) -> Result<std::result::Result<Box<dyn GcLease>, String>> {
        Ok(ObjectLease::acquire(self.remote.clone(), owner, ttl)?
            .map(|lease| Box::new(lease) as Box<dyn GcLease>))
    }
}
