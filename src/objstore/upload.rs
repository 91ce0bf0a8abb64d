//! A resumable upload on an object store, kept where distribution's S3 driver keeps one:
//!
//! ```text
//! <uploads>/<id>/startedat                   RFC 3339
//! <uploads>/<id>/data                        an open multipart upload (not listable), then
//!                                            the assembled bytes during a commit
//! <uploads>/<id>/hashstates/<alg>/<offset>   hash state after `offset` bytes (Go's format)
//! <uploads>/<id>/spool-<nonce>               received bytes after the last part
//! <uploads>/<id>/ocistore-upload.json        the state that says which of these count
//! ```
//!
//! Bytes are hashed as they arrive and gathered in an in-memory spool; every full spool
//! (`chunk_size` bytes) becomes the next part of the multipart upload, sent in the background
//! while the spool fills again. Memory per upload is therefore bounded by two chunks: the
//! spool and the one part in flight (a checkpoint or commit briefly copies the spool instead of
//! having a part in flight), whatever the size of the blob.
//!
//! A checkpoint writes the spool and the hash state to objects of their own, then the state
//! object last, with a conditional PUT on the ETag this writer last saw. A writer that lost the
//! race (another process resumed the upload and saved since) fails instead of clobbering, and
//! has to resume. Any process resumes from the state object alone; parts uploaded after it are
//! uploaded again under the same part numbers, which S3 allows.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::multipart::PartId;
use object_store::{ObjectStoreExt, PutPayload};
use tokio::task::JoinHandle;

use super::client::{Conditional, Remote, failed};
use super::runtime::{block_on, runtime};
use super::state::{PartRecord, STATE_FORMAT, STATE_OBJECT, SpoolRecord, UploadState};
use crate::digest::{Algorithm, Digest, to_hex};
use crate::error::{Result, StoreError};
use crate::hashing::Hasher;
use crate::layout;
use crate::storage::{BlobUpload, check_size, check_upload_id, rfc3339_utc};

use crate::layout::upload::{DATA, STARTED_AT};

struct InFlight {
    part_idx: usize,
    size: u64,
    task: JoinHandle<Result<PartId>>,
}

pub struct ObjectUpload {
    remote: Arc<Remote>,
    id: String,
    /// `<uploads>/<id>`, relative to the root directory.
    dir: String,
    started_at: String,
    hasher: Hasher,
    size: u64,
    /// Received bytes not yet sent as a part.
    spool: Vec<u8>,
    multipart_id: Option<String>,
    /// Parts uploaded and acknowledged, in order.
    parts: Vec<PartRecord>,
    in_flight: Option<InFlight>,
    /// The state object as this writer last wrote or read it, and that version's ETag.
    saved: UploadState,
    saved_etag: String,
    open: bool,
    /// Why this writer may not go on (its memory and the store may disagree).
    broken: Option<String>,
    /// The multipart upload has been completed into the `data` object.
    assembled: bool,
}

fn need_etag(id: &str, e_tag: Option<String>) -> Result<String> {
    e_tag.ok_or_else(|| StoreError::BlobUploadInvalid {
        id: id.to_owned(),
        reason: "the object store returned no ETag, so the upload cannot be locked".into(),
    })
}

/// Removes the upload kept under `dir` (a key under the root directory) as cancelling it does,
/// for a process that has no writer for it (purging abandoned uploads): the multipart upload its
/// state records is aborted (S3 frees the parts it bills for; GCS deletes its part objects,
/// which live outside the upload's keys), then every object under `dir` is deleted. True if
/// anything was there. An unreadable state object aborts nothing and is deleted with the rest.
pub async fn purge(remote: &Remote, dir: &str) -> Result<bool> {
    let state = remote.read(&format!("{dir}/{STATE_OBJECT}")).await?;
    let recorded = state.and_then(|(bytes, _)| UploadState::parse(&bytes).ok());
    if let Some(id) = recorded.and_then(|state| state.multipart_id) {
        let path = remote.path(&format!("{dir}/{DATA}"))?;
        // Already aborted or completed: nothing left to free.
        let _ = remote.bucket().abort_multipart(&path, &id).await;
    }
    remote.delete_tree(dir).await
}

impl ObjectUpload {
    pub fn create(remote: Arc<Remote>, uploads: &str, algorithm: Algorithm) -> Result<Self> {
        let id = uuid::Uuid::new_v4().hyphenated().to_string();
        let dir = format!("{uploads}/{id}");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let started_at = rfc3339_utc(now);
        let hasher = Hasher::new(algorithm);
        let saved = UploadState::new(&hasher);
        let (started_key, state_key) = (
            format!("{dir}/{STARTED_AT}"),
            format!("{dir}/{STATE_OBJECT}"),
        );
        let (started, written) = block_on(async {
            futures::join!(
                remote.write(&started_key, Bytes::from(started_at.clone())),
                remote.write_if(&state_key, saved.to_json(), None),
            )
        });
        started?;
        let saved_etag = match written? {
            Conditional::Written(e_tag) => need_etag(&id, e_tag)?,
            Conditional::Conflict => {
                return Err(StoreError::BlobUploadInvalid {
                    id,
                    reason: "an upload with this id already exists".into(),
                });
            }
        };
        Ok(ObjectUpload {
            remote,
            id,
            dir,
            started_at,
            hasher,
            size: 0,
            spool: Vec::new(),
            multipart_id: None,
            parts: Vec::new(),
            in_flight: None,
            saved,
            saved_etag,
            open: true,
            broken: None,
            assembled: false,
        })
    }

    pub fn resume(remote: Arc<Remote>, uploads: &str, id: &str) -> Result<Self> {
        check_upload_id(id)?;
        let dir = format!("{uploads}/{id}");
        let invalid = |reason: String| StoreError::BlobUploadInvalid {
            id: id.to_owned(),
            reason,
        };
        let (state_key, started_key) = (
            format!("{dir}/{STATE_OBJECT}"),
            format!("{dir}/{STARTED_AT}"),
        );
        let (state, started) =
            block_on(async { futures::join!(remote.read(&state_key), remote.read(&started_key)) });
        let Some((bytes, e_tag)) = state? else {
            return Err(StoreError::BlobUploadUnknown { id: id.to_owned() });
        };
        let saved = UploadState::parse(&bytes).map_err(invalid)?;
        let saved_etag = need_etag(id, e_tag)?;
        let started_at = started?
            .map(|(b, _)| String::from_utf8_lossy(&b).trim().to_owned())
            .unwrap_or_default();
        let chunk = remote.chunk_size() as usize;
        let spool = match &saved.spool {
            None => Vec::new(),
            Some(record) => {
                let key = format!("{dir}/{}", record.name);
                let Some((bytes, _)) = block_on(remote.read(&key))? else {
                    return Err(invalid(format!("its spool object {key} is missing")));
                };
                if bytes.len() as u64 != record.size {
                    return Err(invalid(format!(
                        "its spool object {key} holds {} bytes, not {}",
                        bytes.len(),
                        record.size
                    )));
                }
                let mut spool = Vec::with_capacity(chunk.max(bytes.len()));
                spool.extend_from_slice(&bytes);
                spool
            }
        };
        let hasher = saved.hasher().map_err(invalid)?;
        Ok(ObjectUpload {
            remote,
            id: id.to_owned(),
            dir,
            started_at,
            hasher,
            size: saved.size,
            spool,
            multipart_id: saved.multipart_id.clone(),
            parts: saved.parts.clone(),
            in_flight: None,
            saved,
            saved_etag,
            open: true,
            broken: None,
            assembled: false,
        })
    }

    fn key(&self, name: &str) -> String {
        format!("{}/{name}", self.dir)
    }

    fn hash_state_key(&self, offset: u64) -> String {
        self.key(&layout::upload::hash_state(
            self.hasher.algorithm().name(),
            offset,
        ))
    }

    fn usable(&self) -> Result<()> {
        if let Some(reason) = &self.broken {
            return Err(StoreError::BlobUploadInvalid {
                id: self.id.clone(),
                reason: format!("{reason}; resume it to continue from its last checkpoint"),
            });
        }
        if !self.open {
            return Err(StoreError::Value(format!("upload {} is closed", self.id)));
        }
        Ok(())
    }

    /// Remembers that this writer must not go on after `result` failed.
    fn breaks<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result
            && self.broken.is_none()
        {
            self.broken = Some(format!("an object-store request failed ({e})"));
        }
        result
    }

    fn taken(&mut self) -> StoreError {
        let reason = "another writer changed the upload (resumed, committed or cancelled it) \
                      since this one last saved it";
        self.broken = Some(reason.into());
        StoreError::BlobUploadInvalid {
            id: self.id.clone(),
            reason: reason.into(),
        }
    }

    /// Replaces the state object, if it is still the version this writer last saw.
    fn save_state(&mut self, state: UploadState) -> Result<()> {
        let key = self.key(STATE_OBJECT);
        let written = block_on(self.remote.write_if(
            &key,
            state.to_json(),
            Some(&self.saved_etag),
        ))?;
        match written {
            Conditional::Written(e_tag) => {
                self.saved_etag = need_etag(&self.id, e_tag)?;
                self.saved = state;
                Ok(())
            }
            Conditional::Conflict => Err(self.taken()),
        }
    }

    fn write_spooled(&mut self, mut data: &[u8]) -> Result<()> {
        let chunk = self.remote.chunk_size() as usize;
        loop {
            // `>=`: a spool resumed from a writer with a larger chunk size goes out whole.
            if self.spool.len() >= chunk {
                self.ship_part()?;
            }
            if data.is_empty() {
                return Ok(());
            }
            let n = (chunk - self.spool.len()).min(data.len());
            // Hashing piece by piece overlaps it with the part upload in flight.
            self.hasher.update(&data[..n]);
            self.spool.extend_from_slice(&data[..n]);
            self.size += n as u64;
            data = &data[n..];
        }
    }

    /// Sends the spool as the next part, in the background, after the previous one is done.
    fn ship_part(&mut self) -> Result<()> {
        self.finish_in_flight()?;
        let multipart_id = self.ensure_multipart()?;
        let chunk = self.remote.chunk_size() as usize;
        let bytes = std::mem::replace(&mut self.spool, Vec::with_capacity(chunk));
        let part_idx = self.parts.len();
        let size = bytes.len() as u64;
        let bucket = self.remote.bucket().clone();
        let path = self.remote.path(&self.key(DATA))?;
        let task = runtime().spawn(async move {
            bucket
                .put_part(&path, &multipart_id, part_idx, PutPayload::from(bytes))
                .await
                .map_err(failed("upload part", &path))
        });
        self.in_flight = Some(InFlight {
            part_idx,
            size,
            task,
        });
        Ok(())
    }

    fn finish_in_flight(&mut self) -> Result<()> {
        let Some(flight) = self.in_flight.take() else {
            return Ok(());
        };
        let part = block_on(flight.task).map_err(|e| StoreError::BlobUploadInvalid {
            id: self.id.clone(),
            reason: format!("a part upload did not finish: {e}"),
        })??;
        self.parts.push(PartRecord {
            part_idx: flight.part_idx,
            content_id: part.content_id,
            size: flight.size,
        });
        Ok(())
    }

    fn ensure_multipart(&mut self) -> Result<String> {
        if let Some(id) = &self.multipart_id {
            return Ok(id.clone());
        }
        let path = self.remote.path(&self.key(DATA))?;
        let id = block_on(self.remote.bucket().create_multipart(&path))
            .map_err(failed("create multipart upload", &path))?;
        // Recorded at once, so that whichever process cancels the upload can abort it, even if
        // this one dies before its next checkpoint.
        let mut state = self.saved.clone();
        state.multipart_id = Some(id.clone());
        self.save_state(state)?;
        self.multipart_id = Some(id.clone());
        Ok(id)
    }

    fn checkpoint_now(&mut self) -> Result<()> {
        self.finish_in_flight()?;
        if self.saved.size == self.size && self.saved.multipart_id == self.multipart_id {
            return Ok(());
        }
        let spool = (!self.spool.is_empty()).then(|| SpoolRecord {
            name: format!("spool-{}", uuid::Uuid::new_v4().simple()),
            size: self.spool.len() as u64,
        });
        let hash_state = self.hasher.state();
        let state = UploadState {
            format: STATE_FORMAT,
            algorithm: self.hasher.algorithm().name().to_owned(),
            size: self.size,
            hash_state: to_hex(&hash_state),
            multipart_id: self.multipart_id.clone(),
            parts: self.parts.clone(),
            spool: spool.clone(),
        };
        let hash_key = self.hash_state_key(self.size);
        let spool_upload = spool
            .as_ref()
            .map(|record| (self.key(&record.name), Bytes::copy_from_slice(&self.spool)));
        block_on(async {
            let spool_put = async {
                match spool_upload {
                    Some((key, bytes)) => self.remote.write(&key, bytes).await.map(|_| ()),
                    None => Ok(()),
                }
            };
            let (spooled, hashed) =
                futures::join!(spool_put, self.remote.write(&hash_key, hash_state));
            spooled.and(hashed.map(|_| ()))
        })?;
        let previous = self.saved.clone();
        self.save_state(state)?;
        // What the previous state named is garbage now; leftovers of a failed clean-up go with
        // the upload's prefix at commit or cancel.
        let mut stale = Vec::new();
        if let Some(old) = previous.spool {
            stale.push(self.key(&old.name));
        }
        if previous.size != self.size && previous.size > 0 {
            stale.push(self.hash_state_key(previous.size));
        }
        let paths: Vec<_> = stale
            .iter()
            .filter_map(|k| self.remote.path(k).ok())
            .collect();
        let _ = block_on(self.remote.delete_paths(paths));
        Ok(())
    }

    /// Completes the multipart upload into `<dir>/data`, with the spool as its last part.
    fn assemble(&mut self) -> Result<()> {
        if self.assembled {
            return Ok(());
        }
        let multipart_id = self
            .multipart_id
            .clone()
            .expect("only uploads with parts are assembled");
        let path = self.remote.path(&self.key(DATA))?;
        let bucket = self.remote.bucket().clone();
        let mut parts: Vec<PartId> = self
            .parts
            .iter()
            .map(|p| PartId {
                content_id: p.content_id.clone(),
            })
            .collect();
        let last = (!self.spool.is_empty() || parts.is_empty())
            .then(|| Bytes::copy_from_slice(&self.spool));
        let size = self.size;
        let id = self.id.clone();
        block_on(async {
            // A commit that stopped after completing (a failed copy, a killed process) left
            // the multipart upload gone and the data object in its place.
            match self.remote.head(&self.key(DATA)).await? {
                Some(meta) if meta.size == size => return Ok(()),
                _ => {}
            }
            if let Some(last) = last {
                let part = bucket
                    .put_part(&path, &multipart_id, parts.len(), last.into())
                    .await
                    .map_err(failed("upload part", &path))?;
                parts.push(part);
            }
            bucket
                .complete_multipart(&path, &multipart_id, parts)
                .await
                .map_err(failed("complete multipart upload", &path))?;
            // The parts this writer recorded must be what was assembled; a stale writer
            // overwriting one would show here (S3 itself refuses a part whose ETag changed).
            match self.remote.head(&self.key(DATA)).await? {
                Some(meta) if meta.size == size => Ok(()),
                other => Err(StoreError::BlobUploadInvalid {
                    id,
                    reason: format!(
                        "its parts assembled into {} bytes, not {size}",
                        other.map_or(0, |m| m.size)
                    ),
                }),
            }
        })?;
        self.assembled = true;
        Ok(())
    }

    /// The digest of the assembled data and the spool in another algorithm than the streamed.
    /// The bytes' digests in `algorithms`, in one pass (assembling the parts first).
    fn rehash(&mut self, algorithms: &[Algorithm]) -> Result<Vec<Digest>> {
        let mut hashers: Vec<Hasher> = algorithms.iter().copied().map(Hasher::new).collect();
        let digests = |hashers: &[Hasher]| hashers.iter().map(Hasher::digest).collect();
        if self.multipart_id.is_none() {
            for hasher in &mut hashers {
                hasher.update(&self.spool);
            }
            return Ok(digests(&hashers));
        }
        self.assemble()?;
        let path = self.remote.path(&self.key(DATA))?;
        block_on(async {
            let got = self
                .remote
                .bucket()
                .get(&path)
                .await
                .map_err(failed("GET", &path))?;
            let mut stream = got.into_stream();
            while let Some(bytes) = stream.try_next().await.map_err(failed("GET", &path))? {
                for hasher in &mut hashers {
                    hasher.update(&bytes);
                }
            }
            Ok::<_, StoreError>(())
        })?;
        Ok(digests(&hashers))
    }

    /// Aborts the multipart upload (unless already assembled) and deletes every object under
    /// the upload; true if there was any.
    fn remove(&mut self, also_abort: Option<String>) -> Result<bool> {
        let path = self.remote.path(&self.key(DATA))?;
        let mut ids: Vec<String> = Vec::new();
        if !self.assembled {
            ids.extend(self.multipart_id.clone());
        }
        ids.extend(also_abort.filter(|other| Some(other) != self.multipart_id.as_ref()));
        let bucket = self.remote.bucket().clone();
        block_on(async {
            for id in &ids {
                // Already aborted or completed: nothing left to free.
                let _ = bucket.abort_multipart(&path, id).await;
            }
            self.remote.delete_tree(&self.dir).await
        })
    }

    /// Publishes the verified bytes under `stored` (their digest in the layout's algorithm).
    fn commit_verified(
        &mut self,
        stored: &Digest,
        before_publish: &mut dyn FnMut(&Digest) -> Result<()>,
    ) -> Result<u64> {
        // A stale writer must not publish: another process owns the upload now.
        let current = block_on(self.remote.head(&self.key(STATE_OBJECT)))?;
        if current.and_then(|m| m.e_tag).as_deref() != Some(self.saved_etag.as_str()) {
            return Err(self.taken());
        }
        before_publish(stored)?;
        let key = layout::blob_data(stored);
        let present = block_on(self.remote.head(&key))?.is_some_and(|m| m.size == self.size);
        if !present {
            if self.multipart_id.is_none() {
                let bytes = Bytes::copy_from_slice(&self.spool);
                block_on(self.remote.write(&key, bytes))?;
            } else {
                self.assemble()?;
                let from = self.remote.path(&self.key(DATA))?;
                let to = self.remote.path(&key)?;
                block_on(self.remote.bucket().copy(&from, &to)).map_err(failed("copy", &from))?;
            }
        }
        self.open = false;
        self.remove(None)?;
        Ok(self.size)
    }
}

impl BlobUpload for ObjectUpload {
    fn id(&self) -> &str {
        &self.id
    }

    fn started_at(&self) -> &str {
        &self.started_at
    }

    fn size(&self) -> u64 {
        self.size
    }

    fn algorithm(&self) -> Algorithm {
        self.hasher.algorithm()
    }

    fn digest(&self) -> Digest {
        self.hasher.digest()
    }

    fn is_open(&self) -> bool {
        self.open
    }

    /// Any write may have to wait for the previous part upload to finish.
    fn writes_may_wait(&self) -> bool {
        true
    }

    fn write(&mut self, data: &[u8]) -> Result<()> {
        self.usable()?;
        let written = self.write_spooled(data);
        self.breaks(written)
    }

    /// Every checkpoint is durable: the objects are stored when the PUTs return.
    fn checkpoint(&mut self, _durable: bool) -> Result<()> {
        self.usable()?;
        let saved = self.checkpoint_now();
        if let Err(StoreError::ObjectStore { .. }) = &saved {
            // Nothing in memory was lost: the spool is still here and a retry can save it.
            return saved;
        }
        self.breaks(saved)
    }

    fn close(&mut self, durable: bool) -> Result<()> {
        if !self.open || self.broken.is_some() {
            self.open = false;
            return Ok(());
        }
        let saved = self.checkpoint(durable);
        self.open = false;
        saved
    }

    /// Verifies size and digest from the running hash before touching anything; on a mismatch
    /// the upload stays as it was (unless the check needed another algorithm, which assembles
    /// the parts: that upload can then only be committed or cancelled).
    fn commit(
        &mut self,
        expected: &Digest,
        stored_as: Algorithm,
        size: Option<u64>,
        before_publish: &mut dyn FnMut(&Digest) -> Result<()>,
    ) -> Result<u64> {
        self.usable()?;
        let flushed = self.finish_in_flight();
        self.breaks(flushed)?;
        check_size(size, self.size)?;
        // What the running state does not give is hashed in one pass over the data.
        let mut others: Vec<Algorithm> = [expected.algorithm(), stored_as]
            .into_iter()
            .filter(|&alg| alg != self.hasher.algorithm())
            .collect();
        others.dedup();
        let rehashed = if others.is_empty() {
            Vec::new()
        } else {
            self.rehash(&others)?
        };
        let digest_in = |alg: Algorithm| match others.iter().position(|&other| other == alg) {
            Some(i) => rehashed[i].clone(),
            None => self.hasher.digest(),
        };
        let actual = digest_in(expected.algorithm());
        let stored = digest_in(stored_as);
        if &actual != expected {
            if self.assembled {
                self.broken =
                    Some("its parts were assembled to check a digest in another algorithm".into());
            }
            return Err(StoreError::BlobInvalidDigest {
                expected: expected.to_string(),
                actual: actual.to_string(),
            });
        }
        self.commit_verified(&stored, before_publish)
    }

    fn hash_state(&self) -> Vec<u8> {
        self.hasher.state()
    }

    fn cancel(&mut self) -> Result<()> {
        if let Some(flight) = self.in_flight.take() {
            let _ = block_on(flight.task);
        }
        self.open = false;
        // Another process may have started a multipart upload since this writer read the state.
        let latest = block_on(self.remote.read(&self.key(STATE_OBJECT)))
            .ok()
            .flatten()
            .and_then(|(bytes, _)| UploadState::parse(&bytes).ok())
            .and_then(|state| state.multipart_id);
        let found = self.remove(latest)?;
        if !found {
            return Err(StoreError::BlobUploadUnknown {
                id: self.id.clone(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;
    use sha2::Digest as _;

    use super::*;
    use crate::objstore::blobs::ObjectBlobs;
    use crate::storage::BlobBackend;

    const UPLOADS: &str = "docker/registry/v2/repositories/a/_uploads";
    const CHUNK: u64 = 1000;

    fn remote() -> Arc<Remote> {
        Remote::over(Arc::new(InMemory::new()), "/reg/", CHUNK).unwrap()
    }

    fn sha256(data: &[u8]) -> Digest {
        Digest::from_raw(Algorithm::Sha256, &sha2::Sha256::digest(data)).unwrap()
    }

    fn keys(remote: &Remote, prefix: &str) -> Vec<String> {
        block_on(remote.walk(prefix))
            .unwrap()
            .iter()
            .filter_map(|o| remote.root().relative(&o.location))
            .collect()
    }

    fn no_hook() -> impl FnMut(&Digest) -> Result<()> {
        |_| Ok(())
    }

    #[test]
    fn parts_checkpoints_resume_and_commit() {
        let remote = remote();
        let data: Vec<u8> = (0..5_432u32).map(|i| (i % 251) as u8).collect();
        let mut up = ObjectUpload::create(remote.clone(), UPLOADS, Algorithm::Sha256).unwrap();
        for piece in data[..2_345].chunks(333) {
            up.write(piece).unwrap();
        }
        up.checkpoint(true).unwrap();
        let id = up.id().to_owned();
        // Written after the checkpoint but never saved: resume starts from the checkpoint.
        up.write(&data[2_345..3_000]).unwrap();
        drop(up);

        let mut up = ObjectUpload::resume(remote.clone(), UPLOADS, &id).unwrap();
        assert_eq!(up.size(), 2_345);
        assert_eq!(up.parts.len(), 2);
        assert_eq!(up.spool.len(), 345);
        up.write(&data[2_345..]).unwrap();
        up.close(true).unwrap();

        let mut up = ObjectUpload::resume(remote.clone(), UPLOADS, &id).unwrap();
        assert_eq!(up.digest(), sha256(&data));
        let mut published = Vec::new();
        let size = up
            .commit(
                &sha256(&data),
                Algorithm::Sha256,
                Some(data.len() as u64),
                &mut |d| {
                    published.push(d.clone());
                    Ok(())
                },
            )
            .unwrap();
        assert_eq!(size, data.len() as u64);
        assert_eq!(published, vec![sha256(&data)]);
        let blobs = ObjectBlobs::new(remote.clone());
        let (mut source, size) = blobs.open(&sha256(&data)).unwrap();
        let mut back = vec![0u8; size as usize];
        source.read_exact_at(&mut back, 0).unwrap();
        assert_eq!(back, data);
        assert!(keys(&remote, &format!("{UPLOADS}/{id}")).is_empty());
    }

    #[test]
    fn a_stale_writer_cannot_save_or_commit() {
        let remote = remote();
        let mut first = ObjectUpload::create(remote.clone(), UPLOADS, Algorithm::Sha256).unwrap();
        first.write(b"hello ").unwrap();
        first.checkpoint(true).unwrap();
        let mut second = ObjectUpload::resume(remote.clone(), UPLOADS, first.id()).unwrap();
        second.write(b"world").unwrap();
        second.checkpoint(true).unwrap();

        first.write(b"there").unwrap();
        assert!(matches!(
            first.checkpoint(true),
            Err(StoreError::BlobUploadInvalid { .. })
        ));
        assert!(
            first
                .commit(
                    &sha256(b"hello there"),
                    Algorithm::Sha256,
                    None,
                    &mut no_hook()
                )
                .is_err()
        );
        // The newer writer's state is intact.
        let resumed = ObjectUpload::resume(remote.clone(), UPLOADS, second.id()).unwrap();
        assert_eq!(resumed.digest(), sha256(b"hello world"));
    }

    #[test]
    fn mismatches_leave_the_upload_resumable() {
        let remote = remote();
        let data = vec![9u8; 2_500];
        let mut up = ObjectUpload::create(remote.clone(), UPLOADS, Algorithm::Sha256).unwrap();
        up.write(&data).unwrap();
        assert!(matches!(
            up.commit(&sha256(b"other"), Algorithm::Sha256, None, &mut no_hook()),
            Err(StoreError::BlobInvalidDigest { .. })
        ));
        assert!(matches!(
            up.commit(&sha256(&data), Algorithm::Sha256, Some(1), &mut no_hook()),
            Err(StoreError::BlobInvalidLength { .. })
        ));
        up.commit(
            &sha256(&data),
            Algorithm::Sha256,
            Some(2_500),
            &mut no_hook(),
        )
        .unwrap();
        assert_eq!(
            ObjectBlobs::new(remote.clone())
                .stat(&sha256(&data))
                .unwrap(),
            2_500
        );
    }

    #[test]
    fn another_algorithm_is_checked_by_rehashing() {
        let remote = remote();
        let data: Vec<u8> = (0..3_210u32).map(|i| (i * 7) as u8).collect();
        let b3 = Digest::from_raw(Algorithm::Blake3, blake3::hash(&data).as_bytes()).unwrap();
        let mut up = ObjectUpload::create(remote.clone(), UPLOADS, Algorithm::Sha256).unwrap();
        up.write(&data).unwrap();
        up.commit(&b3, Algorithm::Blake3, None, &mut no_hook())
            .unwrap();
        assert_eq!(ObjectBlobs::new(remote).stat(&b3).unwrap(), 3_210);
    }

    #[test]
    fn cancel_removes_everything_and_unknown_ids_are_unknown() {
        let remote = remote();
        let mut up = ObjectUpload::create(remote.clone(), UPLOADS, Algorithm::Sha512).unwrap();
        up.write(&[1u8; 2_100]).unwrap();
        up.checkpoint(true).unwrap();
        let id = up.id().to_owned();
        assert!(!keys(&remote, UPLOADS).is_empty());
        up.cancel().unwrap();
        assert!(keys(&remote, UPLOADS).is_empty());
        for bad in [id.as_str(), "../x", "not-a-uuid"] {
            assert!(matches!(
                ObjectUpload::resume(remote.clone(), UPLOADS, bad),
                Err(StoreError::BlobUploadUnknown { .. })
            ));
        }
    }
}
