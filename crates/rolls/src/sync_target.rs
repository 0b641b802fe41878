//! Where the sync service keeps its snapshots: a local folder, an S3 bucket or an Azure
//! Blob container, each optionally under a prefix.
//!
//! Written as a URL (`rolls_sync_url` in Tavern's configuration):
//!
//! | URL                                  | Store                                      |
//! |--------------------------------------|--------------------------------------------|
//! | `/var/lib/tavern/sync`, `file:///…`  | local folder                               |
//! | `s3://bucket/prefix`, `s3a://…`      | Amazon S3 or any S3-compatible service     |
//! | `az://container/prefix`, `azure://…` | Azure Blob Storage                         |
//! | `https://…amazonaws.com/…`, `https://….blob.core.windows.net/…` | as above    |
//!
//! Credentials, region and endpoint come from the standard environment variables of each
//! cloud (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_REGION`, `AWS_ENDPOINT`,
//! `AWS_ALLOW_HTTP`; `AZURE_STORAGE_ACCOUNT_NAME`, `AZURE_STORAGE_ACCOUNT_KEY`,
//! `AZURE_STORAGE_ENDPOINT`, `AZURE_STORAGE_SAS_TOKEN`, …), then from [`StoreOptions`]
//! on top. They are never part of the URL: a URL with a password or a query string (an
//! Azure SAS token) in it is refused so it cannot end up in a log; the store would
//! ignore a query anyway.

use std::path::PathBuf;
use std::sync::Arc;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::local::LocalFileSystem;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreScheme, RetryConfig};
use url::Url;

use crate::RollsError;

/// A parsed snapshot location.
#[derive(Clone, PartialEq, Eq)]
pub enum SyncTarget {
    /// A folder on this machine (created when missing).
    Local(PathBuf),
    /// An S3 bucket; the URL as given (`s3://bucket/prefix` or an https form).
    S3(Url),
    /// An Azure Blob container; the URL as given.
    Azure(Url),
}

/// Why a sync URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{url}` {problem}")]
pub struct BadSyncTarget {
    /// The URL without anything secret.
    pub url: String,
    pub problem: String,
}

impl SyncTarget {
    /// Parses a path or URL; the error says what is wrong and which forms work.
    pub fn parse(text: &str) -> Result<SyncTarget, BadSyncTarget> {
        let text = text.trim();
        let bad = |problem: &str| BadSyncTarget {
            url: ::store::redact_url(text),
            problem: problem.to_owned(),
        };
        if text.is_empty() {
            return Err(bad(
                "is empty: give a folder, s3://bucket or az://container",
            ));
        }
        if !text.contains("://") {
            return Ok(SyncTarget::Local(PathBuf::from(text)));
        }
        let url = Url::parse(text).map_err(|e| bad(&format!("is not a URL ({e})")))?;
        if url.query().is_some() {
            // object_store reads no settings from a query: an Azure SAS token
            // (`?sv=…&sig=…`) there would be ignored, and the URL is shown in logs and
            // `tavern sync --once`. The message leaves the query out.
            let base = text.split_once('?').map_or(text, |(base, _)| base);
            return Err(BadSyncTarget {
                url: format!("{}?…", ::store::redact_url(base)),
                problem: "carries a query string, which the object store ignores: give the \
                          URL without `?…` and put a SAS token in AZURE_STORAGE_SAS_TOKEN \
                          (other credentials in AWS_* or AZURE_*) instead"
                    .to_owned(),
            });
        }
        if !url.password().unwrap_or_default().is_empty() || !url.username().is_empty() {
            // `abfs://container@account.dfs.core.windows.net` names a container, not a user.
            if !matches!(url.scheme(), "abfs" | "abfss") {
                return Err(bad(
                    "carries credentials: put them in the environment (AWS_*, AZURE_*) instead",
                ));
            }
        }
        let unsupported = "is not supported: use a folder, file:///path, s3://bucket/prefix or az://container/prefix";
        let host = url.host_str().unwrap_or_default();
        match url.scheme() {
            "s3" | "s3a" if host.is_empty() => {
                return Err(bad("names no bucket (s3://bucket/prefix)"));
            }
            "az" | "azure" if host.is_empty() => {
                return Err(bad("names no container (az://container/prefix)"));
            }
            _ => {}
        }
        let (scheme, _) = ObjectStoreScheme::parse(&url).map_err(|_| bad(unsupported))?;
        match scheme {
            ObjectStoreScheme::Local => url
                .to_file_path()
                .map(SyncTarget::Local)
                .map_err(|()| bad("is not an absolute file:/// path")),
            ObjectStoreScheme::AmazonS3 => Ok(SyncTarget::S3(url)),
            ObjectStoreScheme::MicrosoftAzure => Ok(SyncTarget::Azure(url)),
            _ => Err(bad(unsupported)),
        }
    }

    /// The default: `{data_dir}/rolls-sync`.
    pub fn local(dir: impl Into<PathBuf>) -> SyncTarget {
        SyncTarget::Local(dir.into())
    }

    /// Opens the store, applying `options` over the environment's settings.
    pub fn open(&self, options: &StoreOptions) -> Result<Arc<dyn ObjectStore>, RollsError> {
        match self {
            SyncTarget::Local(dir) => {
                if let Some((key, _)) = options.0.first() {
                    return Err(RollsError::BadStoreOption {
                        key: key.clone(),
                        reason: "a local folder takes no options".into(),
                    });
                }
                std::fs::create_dir_all(dir).map_err(|e| RollsError::SyncFolder {
                    path: dir.display().to_string(),
                    reason: e.to_string(),
                })?;
                Ok(Arc::new(LocalFileSystem::new_with_prefix(dir)?))
            }
            SyncTarget::S3(url) => {
                discord::install_crypto_provider();
                let keys = options.parsed::<AmazonS3ConfigKey>(
                    "not an S3 setting (e.g. aws_endpoint, aws_region, aws_access_key_id)",
                )?;
                let builder = keys.into_iter().fold(
                    AmazonS3Builder::from_env()
                        .with_url(url.as_str())
                        .with_retry(retries()),
                    |builder, (key, value)| builder.with_config(key, value),
                );
                with_prefix(builder.build()?, url)
            }
            SyncTarget::Azure(url) => {
                discord::install_crypto_provider();
                let keys = options.parsed::<AzureConfigKey>(
                    "not an Azure setting (e.g. azure_storage_account_name, azure_storage_account_key, azure_storage_endpoint)",
                )?;
                let builder = keys.into_iter().fold(
                    MicrosoftAzureBuilder::from_env()
                        .with_url(url.as_str())
                        .with_retry(retries()),
                    |builder, (key, value)| builder.with_config(key, value),
                );
                with_prefix(builder.build()?, url)
            }
        }
    }
}

/// How long one request keeps retrying inside the client before the sync sees the error:
/// a few attempts within 30 s (object_store's default is 10 within 3 minutes). The
/// callers retry on their own schedule: the start-up restore with backoff, the snapshot
/// at the next hour.
fn retries() -> RetryConfig {
    RetryConfig {
        max_retries: 4,
        retry_timeout: std::time::Duration::from_secs(30),
        ..RetryConfig::default()
    }
}

/// Wraps `store` so every path is under the URL's path (the bucket's "folder").
fn with_prefix<T: ObjectStore>(store: T, url: &Url) -> Result<Arc<dyn ObjectStore>, RollsError> {
    let (_, prefix) = ObjectStoreScheme::parse(url).map_err(|e| RollsError::BadStoreOption {
        key: "url".into(),
        reason: e.to_string(),
    })?;
    if prefix.as_ref().is_empty() {
        Ok(Arc::new(store))
    } else {
        Ok(Arc::new(PrefixStore::new(store, prefix)))
    }
}

impl std::fmt::Display for SyncTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SyncTarget::Local(dir) => write!(f, "{}", dir.display()),
            SyncTarget::S3(url) | SyncTarget::Azure(url) => f.write_str(url.as_str()),
        }
    }
}

impl std::fmt::Debug for SyncTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SyncTarget({self})")
    }
}

/// Settings for the object store on top of the environment's: `(key, value)` with keys
/// as object_store names them (`aws_endpoint`, `azure_storage_account_key`, …).
/// Values may be secrets, so `Debug` shows the keys only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct StoreOptions(pub Vec<(String, String)>);

impl StoreOptions {
    pub fn with(mut self, key: &str, value: impl Into<String>) -> StoreOptions {
        self.0.push((key.to_owned(), value.into()));
        self
    }

    /// Every key parsed as one backend's setting; the first that is not one is an error
    /// naming it, with `hint` saying what would be.
    fn parsed<K: std::str::FromStr>(&self, hint: &str) -> Result<Vec<(K, String)>, RollsError> {
        self.0
            .iter()
            .map(|(key, value)| {
                let parsed = key.parse().map_err(|_| RollsError::BadStoreOption {
                    key: key.clone(),
                    reason: hint.to_owned(),
                })?;
                Ok((parsed, value.clone()))
            })
            .collect()
    }
}

impl std::fmt::Debug for StoreOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(k, _)| format!("{k}=<redacted>")))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_urls_parse_to_their_store() {
        assert_eq!(
            SyncTarget::parse("/var/lib/tavern/sync"),
            Ok(SyncTarget::Local("/var/lib/tavern/sync".into()))
        );
        assert_eq!(
            SyncTarget::parse("relative/dir"),
            Ok(SyncTarget::Local("relative/dir".into()))
        );
        assert_eq!(
            SyncTarget::parse("file:///srv/sync"),
            Ok(SyncTarget::Local("/srv/sync".into()))
        );
        assert!(matches!(
            SyncTarget::parse("s3://backups/tavern"),
            Ok(SyncTarget::S3(_))
        ));
        assert!(matches!(
            SyncTarget::parse("https://s3.eu-west-1.amazonaws.com/backups"),
            Ok(SyncTarget::S3(_))
        ));
        assert!(matches!(
            SyncTarget::parse("az://backups/tavern"),
            Ok(SyncTarget::Azure(_))
        ));
        assert!(matches!(
            SyncTarget::parse("https://acct.blob.core.windows.net/backups"),
            Ok(SyncTarget::Azure(_))
        ));
    }

    #[test]
    fn bad_targets_say_what_is_wrong_without_secrets() {
        let cases = [
            ("", "is empty"),
            ("gs://bucket", "is not supported"),
            ("memory:///", "is not supported"),
            ("s3://KEY:SECRET@bucket/prefix", "carries credentials"),
            ("s3:///prefix", "names no bucket"),
            ("az:///prefix", "names no container"),
            ("s3://bad bucket", "is not a URL"),
            (
                "https://acct.blob.core.windows.net/backups?sv=2022&sig=SECRET",
                "carries a query string",
            ),
            ("az://backups/rolls?sig=SECRET", "carries a query string"),
            (
                "s3://backups?X-Amz-Signature=SECRET",
                "carries a query string",
            ),
        ];
        for (text, problem) in cases {
            let err = SyncTarget::parse(text).expect_err(text);
            assert!(err.problem.contains(problem), "{text}: {err}");
            assert!(!err.to_string().contains("SECRET"), "{err}");
        }
    }

    #[test]
    fn options_never_show_their_values() {
        let options = StoreOptions::default().with("aws_secret_access_key", "hunter2");
        let shown = format!("{options:?}");
        assert!(shown.contains("aws_secret_access_key"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn an_unknown_option_is_named() {
        let target = SyncTarget::parse("s3://backups").expect("url");
        let err = target
            .open(&StoreOptions::default().with("aws_colour", "red"))
            .expect_err("unknown option");
        assert!(err.to_string().contains("aws_colour"), "{err}");
    }
}
