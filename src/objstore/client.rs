//! A bucket and a root directory, with the requests the metadata driver and the blob store
//! make, on keys relative to the root directory. Everything here is async; callers run it with
//! `runtime::block_on` while the GIL is released.

use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use object_store::multipart::MultipartStore;
use object_store::path::Path;
use object_store::signer::{Method, Signer};
use object_store::{
    GetOptions, GetRange, ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    UpdateVersion,
};

use super::config::{AzureConfig, S3Config};
use super::gcs::GcsConfig;
use super::keys::Root;
use crate::error::{Result, StoreError};

/// What the stores need from a bucket: plain objects and the low-level multipart API (resumable
/// uploads keep their own record of parts, so that another process can finish them).
pub trait Bucket: ObjectStore + MultipartStore {}

impl<T: ObjectStore + MultipartStore> Bucket for T {}

/// Builds the error for a failed request, naming the operation and the full key.
pub fn failed(
    operation: &'static str,
    path: &Path,
) -> impl FnOnce(object_store::Error) -> StoreError {
    let key = path.to_string();
    move |source| StoreError::ObjectStore {
        operation,
        key,
        source,
    }
}

/// How a conditional write went.
pub enum Conditional {
    /// Written; the new ETag.
    Written(Option<String>),
    /// Someone else wrote (or created) the object since the given version.
    Conflict,
}

pub struct Remote {
    bucket: Arc<dyn Bucket>,
    /// Only real S3 signs URLs; the in-memory store of the unit tests does not.
    signer: Option<Arc<dyn Signer>>,
    root: Root,
    chunk_size: u64,
    url: String,
}

impl Remote {
    pub fn connect(config: &S3Config) -> Result<Arc<Remote>> {
        let s3 = Arc::new(config.build()?);
        Self::signed(
            s3.clone(),
            s3,
            &config.root_directory,
            config.chunk_size,
            config.url(),
        )
    }

    pub fn connect_azure(config: &AzureConfig) -> Result<Arc<Remote>> {
        let azure = Arc::new(config.build()?);
        Self::signed(
            azure.clone(),
            azure,
            &config.root_directory,
            config.chunk_size,
            config.url(),
        )
    }

    pub fn connect_gcs(config: &GcsConfig) -> Result<Arc<Remote>> {
        let (bucket, signer) = config.build()?;
        Self::signed(
            Arc::new(bucket),
            signer,
            &config.root_directory,
            config.chunk_size,
            config.url(),
        )
    }

    fn signed(
        bucket: Arc<dyn Bucket>,
        signer: Arc<dyn Signer>,
        root_directory: &str,
        chunk_size: u64,
        url: String,
    ) -> Result<Arc<Remote>> {
        Ok(Arc::new(Remote {
            bucket,
            signer: Some(signer),
            root: Root::new(root_directory)?,
            chunk_size,
            url,
        }))
    }

    /// Over any bucket, for tests.
    pub fn over(
        bucket: Arc<dyn Bucket>,
        root_directory: &str,
        chunk_size: u64,
    ) -> Result<Arc<Remote>> {
        Ok(Arc::new(Remote {
            bucket,
            signer: None,
            root: Root::new(root_directory)?,
            chunk_size,
            url: format!("memory:///{}", root_directory.trim_matches('/')),
        }))
    }

    pub fn bucket(&self) -> &Arc<dyn Bucket> {
        &self.bucket
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn path(&self, key: &str) -> Result<Path> {
        self.root.path(key)
    }

    /// The object's bytes and ETag; None if absent.
    pub async fn read(&self, key: &str) -> Result<Option<(Bytes, Option<String>)>> {
        let path = self.path(key)?;
        let got = match self.bucket.get_opts(&path, GetOptions::default()).await {
            Ok(got) => got,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(failed("GET", &path)(e)),
        };
        let e_tag = got.meta.e_tag.clone();
        let bytes = got.bytes().await.map_err(failed("GET", &path))?;
        Ok(Some((bytes, e_tag)))
    }

    /// Up to `range.end - range.start` bytes from `range.start` (fewer at the end of the object,
    /// none at or past it). A missing object is an error.
    pub async fn read_range(&self, key: &str, range: Range<u64>) -> Result<Bytes> {
        let path = self.path(key)?;
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let options = GetOptions {
            range: Some(GetRange::Bounded(range.clone())),
            ..GetOptions::default()
        };
        let got = match self.bucket.get_opts(&path, options).await {
            Ok(got) => got,
            Err(e @ object_store::Error::NotFound { .. }) => return Err(failed("GET", &path)(e)),
            Err(e) => {
                // A range that starts at or past the end is refused by S3 (416) rather than
                // answered empty; tell that apart from a real failure with one HEAD.
                return match self.bucket.head(&path).await {
                    Ok(meta) if range.start >= meta.size => Ok(Bytes::new()),
                    _ => Err(failed("GET", &path)(e)),
                };
            }
        };
        got.bytes().await.map_err(failed("GET", &path))
    }

    pub async fn head(&self, key: &str) -> Result<Option<ObjectMeta>> {
        let path = self.path(key)?;
        match self.bucket.head(&path).await {
            Ok(meta) => Ok(Some(meta)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(failed("HEAD", &path)(e)),
        }
    }

    /// One PUT: readers see the old object or the new one, never a mix.
    pub async fn write(&self, key: &str, data: impl Into<PutPayload>) -> Result<Option<String>> {
        let path = self.path(key)?;
        let done = self
            .bucket
            .put(&path, data.into())
            .await
            .map_err(failed("PUT", &path))?;
        Ok(done.e_tag)
    }

    /// A PUT that succeeds only if the object is still at version `e_tag` (None: only if it does
    /// not exist yet).
    pub async fn write_if(
        &self,
        key: &str,
        data: impl Into<PutPayload>,
        e_tag: Option<&str>,
    ) -> Result<Conditional> {
        let path = self.path(key)?;
        let mode = match e_tag {
            Some(e_tag) => PutMode::Update(UpdateVersion {
                e_tag: Some(e_tag.to_owned()),
                version: None,
            }),
            None => PutMode::Create,
        };
        let options = PutOptions {
            mode,
            ..PutOptions::default()
        };
        match self.bucket.put_opts(&path, data.into(), options).await {
            Ok(done) => Ok(Conditional::Written(done.e_tag)),
            Err(object_store::Error::Precondition { .. })
            | Err(object_store::Error::AlreadyExists { .. }) => Ok(Conditional::Conflict),
            // A conditional update of an object deleted meanwhile: another writer cancelled or
            // committed the upload.
            Err(object_store::Error::NotFound { .. }) if e_tag.is_some() => {
                Ok(Conditional::Conflict)
            }
            Err(e) => Err(failed("conditional PUT", &path)(e)),
        }
    }

    /// The names of the direct children of `prefix` ("" is the root directory): objects and
    /// common prefixes alike, sorted, as `os.listdir` gives them. As in distribution's S3
    /// driver these are the server's common prefixes, so a server that keeps emptied folders
    /// for a while (SeaweedFS) lists them until it drops them.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let path = self.path(prefix)?;
        let listed = self
            .bucket
            .list_with_delimiter(Some(&path))
            .await
            .map_err(failed("LIST", &path))?;
        let mut names: Vec<String> = listed
            .common_prefixes
            .iter()
            .chain(listed.objects.iter().map(|o| &o.location))
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect();
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Every object under `prefix` (keys relative to the root directory, sorted).
    pub async fn walk(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        let path = self.path(prefix)?;
        let mut objects: Vec<ObjectMeta> = self
            .bucket
            .list(Some(&path))
            .try_collect()
            .await
            .map_err(failed("LIST", &path))?;
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(objects)
    }

    /// Whether any object is under `prefix`: the first page of a listing, not all of them.
    pub async fn any_under(&self, prefix: &str) -> Result<bool> {
        let path = self.path(prefix)?;
        let first = self
            .bucket
            .list(Some(&path))
            .try_next()
            .await
            .map_err(failed("LIST", &path))?;
        Ok(first.is_some())
    }

    /// Deletes `key` and everything under `key/`; true if anything was there.
    pub async fn delete_tree(&self, key: &str) -> Result<bool> {
        let path = self.path(key)?;
        let (this, under) = futures::join!(self.head(key), self.walk(key));
        let mut doomed: Vec<Path> = under?.into_iter().map(|o| o.location).collect();
        if this?.is_some() {
            doomed.push(path);
        }
        let found = !doomed.is_empty();
        self.delete_paths(doomed).await?;
        Ok(found)
    }

    /// Deletes objects, in batches where the store has a batch delete; absent ones are fine.
    pub async fn delete_paths(&self, paths: Vec<Path>) -> Result<()> {
        if paths.is_empty() {
            return Ok(());
        }
        let first = paths[0].clone();
        let locations = futures::stream::iter(paths.into_iter().map(Ok)).boxed();
        self.bucket
            .delete_stream(locations)
            .try_for_each(|_| futures::future::ready(Ok(())))
            .await
            .or_else(|e| match e {
                object_store::Error::NotFound { .. } => Ok(()),
                e => Err(failed("DELETE", &first)(e)),
            })
    }

    /// Deletes one object; absent is fine.
    pub async fn delete(&self, key: &str) -> Result<()> {
        let path = self.path(key)?;
        match self.bucket.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(failed("DELETE", &path)(e)),
        }
    }

    /// Copies an object within the store (server-side).
    pub async fn copy(&self, source: &str, target: &str) -> Result<()> {
        let (from, to) = (self.path(source)?, self.path(target)?);
        self.bucket
            .copy(&from, &to)
            .await
            .map_err(failed("COPY", &from))
    }

    /// A presigned GET URL.
    pub async fn signed_url(&self, key: &str, expires: Duration) -> Result<String> {
        let path = self.path(key)?;
        let signer = self
            .signer
            .as_ref()
            .ok_or_else(|| StoreError::Value(format!("{} cannot sign URLs", self.url)))?;
        let url = signer
            .signed_url(Method::GET, &path, expires)
            .await
            .map_err(failed("sign URL", &path))?;
        Ok(url.to_string())
    }
}
