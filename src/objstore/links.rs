//! Links and the GC mark on object storage (`crate::storage::LinkStore`): a PUT replaces an
//! object atomically, the mark is an existence check (the collector on object storage runs
//! offline, so there is nothing to refresh and no lock to take).

use std::sync::Arc;

use bytes::Bytes;

use super::client::Remote;
use super::runtime::block_on;
use crate::error::Result;
use crate::storage::{Hold, LinkStore};

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
        Ok(block_on(self.remote.head(key))?.is_some())
    }

    fn gc_lock(&self, _exclusive: bool) -> Result<Hold> {
        Ok(Box::new(()))
    }
}
