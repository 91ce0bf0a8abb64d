//! The object storage settings, named after distribution's `storage.s3` and `storage.azure`
//! keys.

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::azure::{MicrosoftAzure, MicrosoftAzureBuilder};

use super::keys::normalize_root;
use crate::error::{Result, StoreError};

/// S3 refuses multipart parts below this size (all but the last part).
pub const MIN_CHUNK_SIZE: u64 = 5 * 1024 * 1024;
/// distribution's default `chunksize`.
pub const DEFAULT_CHUNK_SIZE: u64 = 10 * 1024 * 1024;
/// S3's largest part.
pub const MAX_CHUNK_SIZE: u64 = 5 * 1024 * 1024 * 1024;
pub const DEFAULT_REGION: &str = "us-east-1";

/// The part (S3) or block (Azure) size of multipart uploads; distribution's default if none.
fn check_chunk_size(chunk_size: Option<u64>) -> Result<u64> {
    let chunk_size = chunk_size.unwrap_or(DEFAULT_CHUNK_SIZE);
    if !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size) {
        return Err(StoreError::Value(format!(
            "chunk_size must be between {MIN_CHUNK_SIZE} (5 MiB, S3's smallest part) and \
             {MAX_CHUNK_SIZE} (5 GiB), not {chunk_size}"
        )));
    }
    Ok(chunk_size)
}

/// A service URL setting named `key`, without trailing slashes; None when unset or empty.
pub fn checked_url(key: &str, url: Option<&str>) -> Result<Option<String>> {
    match url.filter(|u| !u.is_empty()) {
        Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
            Ok(Some(u.trim_end_matches('/').to_owned()))
        }
        Some(u) => Err(StoreError::Value(format!(
            "{key} {u:?} must start with http:// or https://"
        ))),
        None => Ok(None),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Config {
    pub bucket: String,
    pub region: String,
    /// `regionendpoint`: an S3-compatible server instead of AWS.
    pub endpoint: Option<String>,
    /// With neither key, credentials come from the environment or the instance metadata.
    pub access_key: Option<String>,
    pub secret_key: Option<String>,
    /// Trimmed of slashes; "" is the bucket root.
    pub root_directory: String,
    pub force_path_style: bool,
    pub chunk_size: u64,
    pub allow_http: bool,
}

impl S3Config {
    /// Validates the settings. `force_path_style` None means "path style when an endpoint is
    /// given" (S3-compatible servers rarely have per-bucket host names).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        bucket: &str,
        region: Option<&str>,
        endpoint: Option<&str>,
        access_key: Option<&str>,
        secret_key: Option<&str>,
        root_directory: &str,
        force_path_style: Option<bool>,
        chunk_size: Option<u64>,
    ) -> Result<S3Config> {
        if bucket.is_empty() || bucket.contains('/') {
            return Err(StoreError::Value(format!("invalid bucket name {bucket:?}")));
        }
        let chunk_size = check_chunk_size(chunk_size)?;
        if access_key.is_some() != secret_key.is_some() {
            return Err(StoreError::Value(
                "access_key and secret_key go together: give both or neither".into(),
            ));
        }
        let endpoint = endpoint.filter(|e| !e.is_empty()).map(str::to_owned);
        let allow_http = match endpoint.as_deref() {
            Some(e) if e.starts_with("http://") => true,
            Some(e) if e.starts_with("https://") => false,
            Some(e) => {
                return Err(StoreError::Value(format!(
                    "endpoint {e:?} must start with http:// or https://"
                )));
            }
            None => false,
        };
        Ok(S3Config {
            bucket: bucket.to_owned(),
            region: region
                .filter(|r| !r.is_empty())
                .unwrap_or(DEFAULT_REGION)
                .to_owned(),
            force_path_style: force_path_style.unwrap_or(endpoint.is_some()),
            endpoint,
            access_key: access_key.map(str::to_owned),
            secret_key: secret_key.map(str::to_owned),
            root_directory: normalize_root(root_directory)?,
            chunk_size,
            allow_http,
        })
    }

    /// "s3://bucket/rootdir".
    pub fn url(&self) -> String {
        if self.root_directory.is_empty() {
            format!("s3://{}", self.bucket)
        } else {
            format!("s3://{}/{}", self.bucket, self.root_directory)
        }
    }

    pub fn build(&self) -> Result<AmazonS3> {
        let mut builder = match (&self.access_key, &self.secret_key) {
            (Some(key), Some(secret)) => AmazonS3Builder::new()
                .with_access_key_id(key)
                .with_secret_access_key(secret),
            _ => AmazonS3Builder::from_env(),
        };
        builder = builder
            .with_bucket_name(&self.bucket)
            .with_region(&self.region)
            .with_virtual_hosted_style_request(!self.force_path_style)
            .with_allow_http(self.allow_http);
        if let Some(endpoint) = &self.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        builder
            .build()
            .map_err(|e| StoreError::Value(format!("invalid S3 configuration: {e}")))
    }
}

/// Azure Blob Storage, as distribution's `storage.azure` names it: `accountname`,
/// `accountkey`, `container`, `serviceurl` (or `realm`: `https://<account>.blob.<realm>`),
/// `rootdirectory`. Multipart uploads are block blobs staged block by block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AzureConfig {
    pub account: String,
    pub key: String,
    pub container: String,
    /// The service URL (`https://<account>.blob.core.windows.net` by default; an emulator's
    /// `http://127.0.0.1:10000/<account>`).
    pub service_url: String,
    pub root_directory: String,
    pub chunk_size: u64,
}

impl AzureConfig {
    pub fn new(
        account: &str,
        key: &str,
        container: &str,
        service_url: Option<&str>,
        realm: Option<&str>,
        root_directory: &str,
        chunk_size: Option<u64>,
    ) -> Result<AzureConfig> {
        if account.is_empty() || container.is_empty() || container.contains('/') {
            return Err(StoreError::Value(format!(
                "invalid Azure account {account:?} or container {container:?}"
            )));
        }
        let chunk_size = check_chunk_size(chunk_size)?;
        let service_url = match checked_url("serviceurl", service_url)? {
            Some(url) => url,
            None => format!(
                "https://{account}.blob.{}",
                realm
                    .filter(|r| !r.is_empty())
                    .unwrap_or("core.windows.net")
            ),
        };
        Ok(AzureConfig {
            account: account.to_owned(),
            key: key.to_owned(),
            container: container.to_owned(),
            service_url,
            root_directory: normalize_root(root_directory)?,
            chunk_size,
        })
    }

    /// "azure://container/rootdir".
    pub fn url(&self) -> String {
        if self.root_directory.is_empty() {
            format!("azure://{}", self.container)
        } else {
            format!("azure://{}/{}", self.container, self.root_directory)
        }
    }

    pub fn build(&self) -> Result<MicrosoftAzure> {
        MicrosoftAzureBuilder::new()
            .with_account(&self.account)
            .with_access_key(&self.key)
            .with_container_name(&self.container)
            .with_endpoint(self.service_url.clone())
            .with_allow_http(self.service_url.starts_with("http://"))
            .build()
            .map_err(|e| StoreError::Value(format!("invalid Azure configuration: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn azure_settings_follow_distribution() {
        let config = AzureConfig::new("acct", "a2V5", "reg", None, None, "/r/", None).unwrap();
        assert_eq!(config.service_url, "https://acct.blob.core.windows.net");
        assert_eq!(
            (config.root_directory.as_str(), config.url()),
            ("r", "azure://reg/r".into())
        );
        let china = AzureConfig::new(
            "acct",
            "a2V5",
            "reg",
            None,
            Some("core.chinacloudapi.cn"),
            "",
            None,
        );
        assert_eq!(
            china.unwrap().service_url,
            "https://acct.blob.core.chinacloudapi.cn"
        );
        let emulator = "http://127.0.0.1:10000/devstoreaccount1/";
        let local = AzureConfig::new("acct", "a2V5", "reg", Some(emulator), None, "", None);
        assert_eq!(local.unwrap().service_url, emulator.trim_end_matches('/'));
        for bad in [
            AzureConfig::new("", "k", "reg", None, None, "", None),
            AzureConfig::new("a", "k", "a/b", None, None, "", None),
            AzureConfig::new("a", "k", "reg", Some("ftp://x"), None, "", None),
            AzureConfig::new("a", "k", "reg", None, None, "", Some(1024)),
        ] {
            assert!(bad.is_err());
        }
    }

    fn config(endpoint: Option<&str>, chunk: Option<u64>) -> Result<S3Config> {
        S3Config::new(
            "b",
            None,
            endpoint,
            Some("k"),
            Some("s"),
            "/reg/",
            None,
            chunk,
        )
    }

    #[test]
    fn defaults_follow_distribution() {
        let c = config(Some("http://127.0.0.1:8333"), None).unwrap();
        assert_eq!(c.region, "us-east-1");
        assert_eq!(c.chunk_size, 10 * 1024 * 1024);
        assert!(c.force_path_style && c.allow_http);
        assert_eq!(c.root_directory, "reg");
        assert_eq!(c.url(), "s3://b/reg");
        c.build().unwrap();

        let aws = config(None, None).unwrap();
        assert!(!aws.force_path_style && !aws.allow_http);
        assert!(!config(Some("https://s3.example"), None).unwrap().allow_http);
    }

    #[test]
    fn refuses_bad_settings() {
        assert!(config(None, Some(MIN_CHUNK_SIZE - 1)).is_err());
        assert!(config(None, Some(MAX_CHUNK_SIZE + 1)).is_err());
        config(None, Some(MIN_CHUNK_SIZE)).unwrap();
        assert!(config(Some("127.0.0.1:8333"), None).is_err());
        assert!(S3Config::new("b", None, None, Some("k"), None, "", None, None).is_err());
        assert!(S3Config::new("", None, None, None, None, "", None, None).is_err());
        assert!(S3Config::new("b", None, None, None, None, "a/../b", None, None).is_err());
    }
}
