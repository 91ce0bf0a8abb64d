//! Google Cloud Storage: reads, listings, deletes and signed URLs through `object_store`'s GCS
//! client (the XML API), writes through the JSON API.
//!
//! Why the JSON API for writes: it is the API distribution's GCS driver uses, GCS serves both,
//! and the emulator the tests run against (fake-gcs-server) has no XML API for uploads. So one
//! write path is exercised by the tests and by production alike.
//!
//! Versions: a GCS object's *generation* changes on every write, its ETag (an MD5 of the bytes)
//! does not when the same bytes are written again. The stores' compare-and-swap writes need the
//! former, so this bucket reports the generation as every object's `e_tag` and conditional
//! writes compare generations (`ifGenerationMatch`).
//!
//! Multipart uploads are assembled with `compose`: each part is an object of its own under
//! `<rootdirectory>/_ocistore_parts/<upload id>/`, outside distribution's tree, and completing
//! composes them (32 at a time, GCS's limit) into a scratch object there, which a last compose
//! writes to the target in one step: readers never see a partial object. The parts are deleted
//! once composed or aborted; a process killed in between leaves them behind, like an
//! unfinished S3 multipart upload (a lifecycle rule on the prefix collects them).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use http::{Method, Request, StatusCode};
use object_store::client::{HttpClient, HttpConnector, HttpRequestBody, ReqwestConnector};
use object_store::gcp::{GoogleCloudStorage, GoogleCloudStorageBuilder};
use object_store::multipart::{MultipartStore, PartId};
use object_store::path::Path;
use object_store::{
    ClientOptions, CopyMode, CopyOptions, GetOptions, GetResult, ListResult, MultipartId,
    MultipartUpload, ObjectMeta, ObjectStore, PutMode, PutMultipartOptions, PutOptions, PutPayload,
    PutResult,
};

use super::config::checked_url;
use super::keys::normalize_root;
use crate::error::{Result, StoreError};

const STORE: &str = "GCS";
/// GCS's public endpoint (both APIs).
pub const DEFAULT_ENDPOINT: &str = "https://storage.googleapis.com";
/// distribution's `chunksize` for GCS must be a multiple of this.
pub const CHUNK_UNIT: u64 = 256 * 1024;
/// distribution's default `chunksize` for GCS.
pub const DEFAULT_CHUNK_SIZE: u64 = 16 * 1024 * 1024;
/// A compose request takes at most this many source objects.
const COMPOSE_LIMIT: usize = 32;
/// Where multipart parts live, under the root directory.
pub const PARTS_DIR: &str = "_ocistore_parts";
/// Requests GCS asks to be retried (429, 5xx) are tried this many times in all.
const ATTEMPTS: u32 = 4;

/// `storage.gcs`, as distribution names it: `bucket`, `keyfile` or `credentials`,
/// `rootdirectory`, `chunksize`; plus `endpoint` for an emulator or a private endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct GcsConfig {
    pub bucket: String,
    /// A service account key file's path.
    pub keyfile: Option<String>,
    /// A service account key, as JSON text (distribution's `credentials` map).
    pub credentials: Option<String>,
    pub root_directory: String,
    pub chunk_size: u64,
    /// Without a trailing slash.
    pub endpoint: String,
}

impl fmt::Debug for GcsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GcsConfig")
            .field("bucket", &self.bucket)
            .field("keyfile", &self.keyfile)
            .field(
                "credentials",
                &self.credentials.as_ref().map(|_| "<secret>"),
            )
            .field("root_directory", &self.root_directory)
            .field("chunk_size", &self.chunk_size)
            .field("endpoint", &self.endpoint)
            .finish()
    }
}

impl GcsConfig {
    pub fn new(
        bucket: &str,
        keyfile: Option<&str>,
        credentials: Option<&str>,
        root_directory: &str,
        chunk_size: Option<u64>,
        endpoint: Option<&str>,
    ) -> Result<GcsConfig> {
        if bucket.is_empty() || bucket.contains('/') {
            return Err(StoreError::Value(format!(
                "invalid GCS bucket name {bucket:?}"
            )));
        }
        let keyfile = keyfile.filter(|k| !k.is_empty());
        let credentials = credentials.filter(|c| !c.is_empty());
        if keyfile.is_some() && credentials.is_some() {
            return Err(StoreError::Value(
                "keyfile and credentials are two ways to give the same key: give one".into(),
            ));
        }
        let chunk_size = chunk_size.unwrap_or(DEFAULT_CHUNK_SIZE);
        if chunk_size == 0 || !chunk_size.is_multiple_of(CHUNK_UNIT) {
            return Err(StoreError::Value(format!(
                "chunksize must be a positive multiple of {CHUNK_UNIT} (256 KiB), not {chunk_size}"
            )));
        }
        let endpoint =
            checked_url("endpoint", endpoint)?.unwrap_or_else(|| DEFAULT_ENDPOINT.to_owned());
        Ok(GcsConfig {
            bucket: bucket.to_owned(),
            keyfile: keyfile.map(str::to_owned),
            credentials: credentials.map(str::to_owned),
            root_directory: normalize_root(root_directory)?,
            chunk_size,
            endpoint,
        })
    }

    /// "gs://bucket/rootdir".
    pub fn url(&self) -> String {
        if self.root_directory.is_empty() {
            format!("gs://{}", self.bucket)
        } else {
            format!("gs://{}/{}", self.bucket, self.root_directory)
        }
    }

    fn client_options(&self) -> ClientOptions {
        ClientOptions::new().with_allow_http(self.endpoint.starts_with("http://"))
    }

    /// The bucket, and the same client as the signer of presigned URLs.
    pub fn build(&self) -> Result<(GcsBucket, Arc<GoogleCloudStorage>)> {
        let invalid =
            |e: object_store::Error| StoreError::Value(format!("invalid GCS configuration: {e}"));
        let mut builder = match (&self.keyfile, &self.credentials) {
            (Some(path), _) => GoogleCloudStorageBuilder::new().with_service_account_path(path),
            (_, Some(key)) => GoogleCloudStorageBuilder::new().with_service_account_key(key),
            // Application default credentials: GOOGLE_APPLICATION_CREDENTIALS, gcloud's
            // login, or the metadata server.
            _ => GoogleCloudStorageBuilder::from_env(),
        };
        builder = builder
            .with_bucket_name(&self.bucket)
            .with_base_url(&self.endpoint)
            .with_client_options(self.client_options());
        let inner = Arc::new(builder.build().map_err(invalid)?);
        let client = ReqwestConnector::default()
            .connect(&self.client_options())
            .map_err(invalid)?;
        let parts_root = if self.root_directory.is_empty() {
            PARTS_DIR.to_owned()
        } else {
            format!("{}/{PARTS_DIR}", self.root_directory)
        };
        let bucket = GcsBucket {
            inner: inner.clone(),
            client,
            endpoint: self.endpoint.clone(),
            bucket: self.bucket.clone(),
            parts_root: Path::from(parts_root),
        };
        Ok((bucket, inner))
    }
}

/// A GCS bucket as the stores use one (see the module's documentation).
pub struct GcsBucket {
    inner: Arc<GoogleCloudStorage>,
    client: HttpClient,
    endpoint: String,
    bucket: String,
    parts_root: Path,
}

impl fmt::Debug for GcsBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GcsBucket({}/{})", self.endpoint, self.bucket)
    }
}

impl fmt::Display for GcsBucket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GCS({})", self.bucket)
    }
}

/// Percent-encodes all but RFC 3986's unreserved characters: an object name is one path
/// segment (or query value) of the JSON API.
fn encode(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn generic(message: String) -> object_store::Error {
    object_store::Error::Generic {
        store: STORE,
        source: message.into(),
    }
}

/// The generation as the version the stores compare.
fn with_generation(mut meta: ObjectMeta) -> ObjectMeta {
    meta.e_tag = meta.version.clone();
    meta
}

/// What a write condition becomes on the JSON API.
enum Precondition {
    None,
    /// `ifGenerationMatch=0`.
    Absent,
    Generation(String),
}

impl GcsBucket {
    fn part_path(&self, id: &str, name: &str) -> Path {
        self.parts_root.clone().join(id).join(name)
    }

    /// Sends a request to the JSON API, retrying those GCS asks to retry; the response's
    /// status and body. `body` is rebuilt for each attempt (it is reference-counted bytes).
    async fn send(
        &self,
        method: Method,
        url: &str,
        content_type: &str,
        body: &PutPayload,
    ) -> object_store::Result<(StatusCode, Bytes)> {
        let credential = self.inner.credentials().get_credential().await?;
        let mut delay = Duration::from_millis(100);
        for attempt in 1..=ATTEMPTS {
            let mut request = Request::builder()
                .method(method.clone())
                .uri(url)
                .header(http::header::CONTENT_TYPE, content_type)
                .header(http::header::CONTENT_LENGTH, body.content_length());
            if !credential.bearer.is_empty() {
                request = request.header(
                    http::header::AUTHORIZATION,
                    format!("Bearer {}", credential.bearer),
                );
            }
            let request = request
                .body(HttpRequestBody::from(body.clone()))
                .map_err(|e| generic(format!("{method} {url}: {e}")))?;
            let outcome = match self.client.execute(request).await {
                Ok(response) => {
                    let status = response.status();
                    match response.into_body().bytes().await {
                        Ok(bytes) => Ok((status, bytes)),
                        Err(e) => Err(e.to_string()),
                    }
                }
                Err(e) => Err(e.to_string()),
            };
            let retry = match &outcome {
                Ok((status, _)) => {
                    *status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
                }
                Err(_) => true,
            };
            if !retry || attempt == ATTEMPTS {
                return outcome.map_err(|e| generic(format!("{method} {url}: {e}")));
            }
            tokio::time::sleep(delay).await;
            delay *= 4;
        }
        unreachable!("the last attempt returns")
    }

    /// An object resource from the JSON API: its generation.
    fn generation(body: &[u8]) -> object_store::Result<String> {
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|e| generic(format!("unreadable object resource: {e}")))?;
        value["generation"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| generic("an object resource without a generation".into()))
    }

    /// Maps a failed JSON API response onto `object_store`'s errors.
    fn refused(path: &Path, status: StatusCode, body: &[u8], create: bool) -> object_store::Error {
        let source = format!(
            "{status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(300)])
        )
        .into();
        let path = path.to_string();
        match status {
            StatusCode::NOT_FOUND => object_store::Error::NotFound { path, source },
            StatusCode::PRECONDITION_FAILED if create => {
                object_store::Error::AlreadyExists { path, source }
            }
            StatusCode::PRECONDITION_FAILED | StatusCode::CONFLICT => {
                object_store::Error::Precondition { path, source }
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                object_store::Error::PermissionDenied { path, source }
            }
            _ => object_store::Error::Generic {
                store: STORE,
                source,
            },
        }
    }

    /// A simple (one request) upload; the new generation.
    async fn upload(
        &self,
        path: &Path,
        payload: &PutPayload,
        condition: Precondition,
    ) -> object_store::Result<String> {
        let mut url = format!(
            "{}/upload/storage/v1/b/{}/o?uploadType=media&name={}",
            self.endpoint,
            encode(&self.bucket),
            encode(path.as_ref())
        );
        let create = matches!(condition, Precondition::Absent);
        match condition {
            Precondition::None => {}
            Precondition::Absent => url.push_str("&ifGenerationMatch=0"),
            Precondition::Generation(g) => url.push_str(&format!("&ifGenerationMatch={g}")),
        }
        let (status, body) = self
            .send(Method::POST, &url, "application/octet-stream", payload)
            .await?;
        if !status.is_success() {
            return Err(Self::refused(path, status, &body, create));
        }
        Self::generation(&body)
    }

    /// Composes `sources` (in order, at most 32) into `target`; the target's generation.
    async fn compose(
        &self,
        sources: &[(Path, Option<String>)],
        target: &Path,
    ) -> object_store::Result<String> {
        let sources: Vec<serde_json::Value> = sources
            .iter()
            .map(|(name, generation)| match generation {
                // Pinned: a part rewritten since it was recorded is refused, not assembled.
                Some(g) => serde_json::json!({"name": name.as_ref(), "generation": g}),
                None => serde_json::json!({"name": name.as_ref()}),
            })
            .collect();
        let request = serde_json::json!({
            "sourceObjects": sources,
            "destination": {"contentType": "application/octet-stream"},
        });
        let url = format!(
            "{}/storage/v1/b/{}/o/{}/compose",
            self.endpoint,
            encode(&self.bucket),
            encode(target.as_ref())
        );
        let payload = PutPayload::from(Bytes::from(request.to_string()));
        let (status, body) = self
            .send(Method::POST, &url, "application/json", &payload)
            .await?;
        if !status.is_success() {
            return Err(Self::refused(target, status, &body, false));
        }
        Self::generation(&body)
    }

    /// A server-side copy (`rewrite`, repeated until GCS says it is done).
    async fn rewrite(&self, from: &Path, to: &Path, create: bool) -> object_store::Result<()> {
        let base = format!(
            "{}/storage/v1/b/{bucket}/o/{}/rewriteTo/b/{bucket}/o/{}",
            self.endpoint,
            encode(from.as_ref()),
            encode(to.as_ref()),
            bucket = encode(&self.bucket),
        );
        let mut token: Option<String> = None;
        loop {
            let mut query = Vec::new();
            if create {
                query.push("ifGenerationMatch=0".to_owned());
            }
            if let Some(t) = &token {
                query.push(format!("rewriteToken={}", encode(t)));
            }
            let url = if query.is_empty() {
                base.clone()
            } else {
                format!("{base}?{}", query.join("&"))
            };
            let empty = PutPayload::from(Bytes::from_static(b"{}"));
            let (status, body) = self
                .send(Method::POST, &url, "application/json", &empty)
                .await?;
            if !status.is_success() {
                // A missing source is the error to report, not the target.
                let path = if status == StatusCode::NOT_FOUND {
                    from
                } else {
                    to
                };
                return Err(Self::refused(path, status, &body, create));
            }
            let value: serde_json::Value = serde_json::from_slice(&body)
                .map_err(|e| generic(format!("unreadable rewrite response: {e}")))?;
            if value["done"].as_bool().unwrap_or(true) {
                return Ok(());
            }
            token = value["rewriteToken"].as_str().map(str::to_owned);
            if token.is_none() {
                return Err(generic("a rewrite not done and without a token".into()));
            }
        }
    }

    async fn delete_quietly(&self, paths: Vec<Path>) {
        let locations = futures::stream::iter(paths.into_iter().map(Ok)).boxed();
        let _ = self
            .inner
            .delete_stream(locations)
            .collect::<Vec<_>>()
            .await;
    }
}

#[async_trait]
impl ObjectStore for GcsBucket {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let condition = match opts.mode {
            PutMode::Overwrite => Precondition::None,
            PutMode::Create => Precondition::Absent,
            PutMode::Update(version) => match version.version.or(version.e_tag) {
                Some(generation) => Precondition::Generation(generation),
                None => {
                    return Err(generic(
                        "a conditional update needs the object's generation".into(),
                    ));
                }
            },
        };
        let generation = self.upload(location, &payload, condition).await?;
        Ok(PutResult {
            e_tag: Some(generation.clone()),
            version: Some(generation),
            extensions: Default::default(),
        })
    }

    async fn put_multipart_opts(
        &self,
        _location: &Path,
        _opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        // The stores use the low-level MultipartStore API, whose parts another process can
        // finish; nothing here streams through `MultipartUpload`.
        Err(object_store::Error::NotImplemented {
            operation: "put_multipart_opts (use MultipartStore)".into(),
            implementer: "ocistore's GcsBucket".into(),
        })
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let mut got = self.inner.get_opts(location, options).await?;
        got.meta = with_generation(got.meta);
        Ok(got)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        // Listings carry no generation: no version rather than the wrong kind of one.
        self.inner
            .list(prefix)
            .map_ok(|mut meta| {
                meta.e_tag = None;
                meta
            })
            .boxed()
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let mut listed = self.inner.list_with_delimiter(prefix).await?;
        for meta in &mut listed.objects {
            meta.e_tag = None;
        }
        Ok(listed)
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let create = matches!(options.mode, CopyMode::Create);
        self.rewrite(from, to, create).await
    }
}

#[async_trait]
impl MultipartStore for GcsBucket {
    async fn create_multipart(&self, _path: &Path) -> object_store::Result<MultipartId> {
        Ok(uuid::Uuid::new_v4().simple().to_string())
    }

    async fn put_part(
        &self,
        _path: &Path,
        id: &MultipartId,
        part_idx: usize,
        data: PutPayload,
    ) -> object_store::Result<PartId> {
        let name = format!("{part_idx:06}");
        let generation = self
            .upload(&self.part_path(id, &name), &data, Precondition::None)
            .await?;
        Ok(PartId {
            content_id: format!("{name}:{generation}"),
        })
    }

    async fn complete_multipart(
        &self,
        path: &Path,
        id: &MultipartId,
        parts: Vec<PartId>,
    ) -> object_store::Result<PutResult> {
        let mut sources = Vec::with_capacity(parts.len());
        for part in &parts {
            let (name, generation) = part
                .content_id
                .split_once(':')
                .ok_or_else(|| generic(format!("not a part of this store: {}", part.content_id)))?;
            sources.push((self.part_path(id, name), Some(generation.to_owned())));
        }
        if sources.is_empty() {
            // An empty object, as S3 makes of a multipart upload of one empty part.
            sources.push((self.part_path(id, "empty"), None));
            self.upload(&sources[0].0, &PutPayload::default(), Precondition::None)
                .await?;
        }
        // Fold all but the last 31 into a scratch object, so the target appears whole.
        let scratch = self.part_path(id, "assembled");
        let mut pending: &[(Path, Option<String>)] = &sources;
        let mut assembled: Option<(Path, Option<String>)> = None;
        while pending.len() + usize::from(assembled.is_some()) > COMPOSE_LIMIT {
            let take = COMPOSE_LIMIT - usize::from(assembled.is_some());
            let mut batch: Vec<_> = assembled.take().into_iter().collect();
            batch.extend_from_slice(&pending[..take]);
            let generation = self.compose(&batch, &scratch).await?;
            assembled = Some((scratch.clone(), Some(generation)));
            pending = &pending[take..];
        }
        let mut last: Vec<_> = assembled.into_iter().collect();
        last.extend_from_slice(pending);
        let generation = self.compose(&last, path).await?;
        let mut leftovers: Vec<Path> = sources.into_iter().map(|(p, _)| p).collect();
        leftovers.push(scratch);
        self.delete_quietly(leftovers).await;
        Ok(PutResult {
            e_tag: Some(generation.clone()),
            version: Some(generation),
            extensions: Default::default(),
        })
    }

    async fn abort_multipart(&self, _path: &Path, id: &MultipartId) -> object_store::Result<()> {
        let prefix = self.parts_root.clone().join(id.as_str());
        let parts: Vec<Path> = self
            .inner
            .list(Some(&prefix))
            .map_ok(|meta| meta.location)
            .try_collect()
            .await?;
        self.delete_quietly(parts).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_follow_distribution() {
        let config = GcsConfig::new("reg", None, None, "/r/", None, None).unwrap();
        assert_eq!(config.chunk_size, 16 * 1024 * 1024);
        assert_eq!(config.endpoint, DEFAULT_ENDPOINT);
        assert_eq!(
            (config.root_directory.as_str(), config.url()),
            ("r", "gs://reg/r".into())
        );
        let local = GcsConfig::new(
            "reg",
            None,
            None,
            "",
            Some(CHUNK_UNIT),
            Some("http://127.0.0.1:4443/"),
        );
        let local = local.unwrap();
        assert_eq!(local.endpoint, "http://127.0.0.1:4443");
        assert_eq!(local.url(), "gs://reg");
        for bad in [
            GcsConfig::new("", None, None, "", None, None),
            GcsConfig::new("a/b", None, None, "", None, None),
            GcsConfig::new("reg", Some("/k.json"), Some("{}"), "", None, None),
            GcsConfig::new("reg", None, None, "", Some(CHUNK_UNIT + 1), None),
            GcsConfig::new("reg", None, None, "", Some(0), None),
            GcsConfig::new("reg", None, None, "", None, Some("127.0.0.1:4443")),
            GcsConfig::new("reg", None, None, "a/../b", None, None),
        ] {
            assert!(bad.is_err());
        }
        let secret = GcsConfig::new(
            "reg",
            None,
            Some("{\"private_key\": \"x\"}"),
            "",
            None,
            None,
        );
        assert!(!format!("{:?}", secret.unwrap()).contains("private_key"));
    }

    #[test]
    fn object_names_are_one_segment() {
        assert_eq!(
            encode("docker/registry/v2/a b+c"),
            "docker%2Fregistry%2Fv2%2Fa%20b%2Bc"
        );
        assert_eq!(encode("sha256-AZaz09-._~"), "sha256-AZaz09-._~");
    }
}
