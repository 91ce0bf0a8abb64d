//! Garbage collection on object storage while pushes continue, on any number of instances.
//!
//! Object storage has no lock to share and no modification time a push can refresh, so the
//! filesystem's protocol (`crate::store::links`: an `flock`, `utimes`) becomes three kinds of
//! small objects, all under `_ocistore/gc/` (`crate::layout`):
//!
//! - **The lease** (`gc/lease`): one collector at a time. Taken with a conditional create (the
//!   conditional write uploads already use), renewed by a conditional update of the version it
//!   wrote (once a quarter of its term has passed), and taken over only after it has gone
//!   unrenewed for its term by the storage's own clock (a collector that died or hung); a
//!   collector stops deleting once its last renewal is older than three quarters of its term.
//! - **Marks** (`gc/marks/<key>`): a push that makes an object referenced (commits or mounts
//!   a blob, puts a manifest naming it, tags a manifest) writes the object's mark first, then
//!   checks the object is there. The collector keeps what was written or marked after its
//!   cutoff (`--min-age` before the collection started, by the storage's clock).
//! - **Claims** (`gc/claims/<key>`): the collector writes one before it reads an object's
//!   marks, and removes it once it has decided (and deleted). A push that finds a claim after
//!   writing its mark waits until the claim is gone.
//!
//! Mark-then-check against claim-then-check (Dekker's order, over a strongly consistent
//! store): either the collector's read sees the push's mark and keeps the object, or the
//! push's read sees the claim and waits for the verdict, then finds the object deleted (and
//! refuses as the filesystem does: blob unknown) or still there. A collector deletes under a
//! claim only within `CLAIM_LIFETIME` of writing it, so a push waits at most twice that for a
//! claim whose collector died.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use object_store::ObjectMeta;

use super::client::{Conditional, Remote};
use super::runtime::block_on;
use crate::error::{Result, StoreError};
use crate::layout;
use crate::storage::{GcClaim, GcLease};

/// How long a collector may rely on a claim it wrote: it deletes nothing under an older one.
pub const CLAIM_LIFETIME: Duration = Duration::from_secs(5);
/// How often a push looks again at a claim it waits for.
const CLAIM_POLL: Duration = Duration::from_millis(20);
/// The term of a lease whose object does not say (`ttl_seconds`).
const DEFAULT_LEASE_TTL: Duration = Duration::from_secs(60);

/// UNIX seconds of an object's modification time, as the storage's clock gave it.
fn seconds(meta: &ObjectMeta) -> f64 {
    meta.last_modified.timestamp_millis() as f64 / 1000.0
}

/// The storage's clock now: an object written and read back.
pub async fn storage_now(remote: &Remote) -> Result<f64> {
    let key = layout::gc_clock();
    remote.write(&key, Bytes::new()).await?;
    match remote.head(&key).await? {
        Some(meta) => Ok(seconds(&meta)),
        None => Err(StoreError::Value(format!(
            "{}: the object {key} was written but cannot be found",
            remote.url()
        ))),
    }
}

/// A push's mark of the object at `key`; whether the object is there once no collector is
/// deciding on it.
pub async fn mark(remote: &Remote, key: &str) -> Result<bool> {
    remote.write(&layout::gc_mark(key), Bytes::new()).await?;
    let claim = layout::gc_claim(key);
    loop {
        let (claimed, found) = futures::join!(remote.head(&claim), remote.head(key));
        let decided = match claimed? {
            None => {
                SEEN_CLAIMS.forget(&claim);
                true
            }
            Some(meta) => SEEN_CLAIMS.stale(&claim, meta.e_tag),
        };
        if decided {
            return Ok(found?.is_some());
        }
        tokio::time::sleep(CLAIM_POLL).await;
    }
}

/// The claims this process has waited on, by key: the version seen and since when. A claim
/// (each is written with a unique body, so a new one has a new ETag) seen for twice
/// `CLAIM_LIFETIME` belongs to a collector that can no longer delete under it; every later
/// push of the process passes it at once instead of waiting again. Claims are not deleted
/// here: the next collector removes them when it takes the lease.
struct SeenClaims(Mutex<BTreeMap<String, (Option<String>, Instant)>>);

static SEEN_CLAIMS: SeenClaims = SeenClaims(Mutex::new(BTreeMap::new()));

impl SeenClaims {
    fn forget(&self, claim: &str) {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if !seen.is_empty() {
            seen.remove(claim);
        }
    }

    fn stale(&self, claim: &str, e_tag: Option<String>) -> bool {
        let mut seen = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if seen.len() > 10_000 {
            seen.retain(|_, (_, since)| since.elapsed() < 4 * CLAIM_LIFETIME);
        }
        let first = seen
            .entry(claim.to_owned())
            .or_insert((None, Instant::now()));
        if first.0 != e_tag || e_tag.is_none() && first.1.elapsed() > 4 * CLAIM_LIFETIME {
            *first = (e_tag, Instant::now());
        }
        first.1.elapsed() > 2 * CLAIM_LIFETIME
    }
}

/// The collector's claim on one object (`LinkStore::gc_claim`).
pub struct ObjectClaim {
    remote: Arc<Remote>,
    key: String,
    since: Instant,
}

impl ObjectClaim {
    pub fn take(remote: Arc<Remote>, key: &str) -> Result<ObjectClaim> {
        let since = Instant::now();
        // A unique body, so that each claim has its own ETag (`SeenClaims`).
        let token = uuid::Uuid::new_v4().simple().to_string();
        block_on(remote.write(&layout::gc_claim(key), token))?;
        Ok(ObjectClaim {
            remote,
            key: key.to_owned(),
            since,
        })
    }
}

impl GcClaim for ObjectClaim {
    fn marked_at(&self) -> Result<Option<f64>> {
        let mark = layout::gc_mark(&self.key);
        let (object, marked) = block_on(async {
            futures::join!(self.remote.head(&self.key), self.remote.head(&mark))
        });
        let Some(object) = object? else {
            return Ok(None);
        };
        let marked = marked?.map_or(f64::MIN, |m| seconds(&m));
        Ok(Some(seconds(&object).max(marked)))
    }

    fn holds(&self) -> bool {
        self.since.elapsed() < CLAIM_LIFETIME
    }

    fn forget(&self) -> Result<()> {
        block_on(self.remote.delete(&layout::gc_mark(&self.key)))
    }
}

impl Drop for ObjectClaim {
    fn drop(&mut self) {
        // Left behind, it only delays pushes of this object until it lapses.
        let _ = block_on(self.remote.delete(&layout::gc_claim(&self.key)));
    }
}

struct Held {
    e_tag: String,
    renewed: Instant,
    lost: bool,
}

/// The collector's lease on object storage (`LinkStore::gc_lease`).
pub struct ObjectLease {
    remote: Arc<Remote>,
    body: String,
    ttl: Duration,
    started_at: f64,
    held: Mutex<Option<Held>>,
}

impl ObjectLease {
    /// Takes the lease for a term of `ttl`, or says who holds it: `Err(holder)`. A lease found
    /// unrenewed for its holder's term is taken over (a conditional update of the version
    /// found, so of two collectors doing so at once one wins). Claims left by an earlier collector go: none can
    /// still be deciding.
    pub fn acquire(
        remote: Arc<Remote>,
        owner: &str,
        ttl: Duration,
    ) -> Result<std::result::Result<ObjectLease, String>> {
        let key = layout::gc_lease();
        let body =
            serde_json::json!({ "owner": owner, "ttl_seconds": ttl.as_secs_f64() }).to_string();
        block_on(async {
            let now = storage_now(&remote).await?;
            let renewed = Instant::now();
            let mut written = remote.write_if(&key, body.clone(), None).await?;
            if let Conditional::Conflict = written {
                let Some(meta) = remote.head(&key).await? else {
                    return Ok(Err("a collector that has just finished".to_owned()));
                };
                let found: Option<serde_json::Value> = remote
                    .read(&key)
                    .await?
                    .and_then(|(bytes, _)| serde_json::from_slice(&bytes).ok());
                let holder = found
                    .as_ref()
                    .and_then(|v| v.get("owner")?.as_str())
                    .unwrap_or("an unknown collector")
                    .to_owned();
                let term = found
                    .as_ref()
                    .and_then(|v| v.get("ttl_seconds")?.as_f64())
                    .unwrap_or(DEFAULT_LEASE_TTL.as_secs_f64());
                let age = now - seconds(&meta);
                if age <= term {
                    return Ok(Err(format!("{holder}, renewed {age:.0} s ago")));
                }
                written = remote
                    .write_if(&key, body.clone(), meta.e_tag.as_deref())
                    .await?;
                if let Conditional::Conflict = written {
                    return Ok(Err(format!("a collector that took over from {holder}")));
                }
            }
            let Conditional::Written(Some(e_tag)) = written else {
                return Err(StoreError::Value(format!(
                    "{} gave no ETag for {key}: the GC lease needs conditional writes",
                    remote.url()
                )));
            };
            let stale: Vec<_> = remote
                .walk(&layout::gc_claims())
                .await?
                .into_iter()
                .map(|meta| meta.location)
                .collect();
            remote.delete_paths(stale).await?;
            Ok(Ok(ObjectLease {
                remote: remote.clone(),
                body,
                ttl,
                started_at: now,
                held: Mutex::new(Some(Held {
                    e_tag,
                    renewed,
                    lost: false,
                })),
            }))
        })
    }
}

impl GcLease for ObjectLease {
    fn started_at(&self) -> f64 {
        self.started_at
    }

    fn renew(&self) -> Result<bool> {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        let Some(state) = held.as_mut() else {
            return Ok(false);
        };
        if state.lost {
            return Ok(false);
        }
        if state.renewed.elapsed() < self.ttl / 4 {
            return Ok(true);
        }
        let renewed = Instant::now();
        let written = block_on(self.remote.write_if(
            &layout::gc_lease(),
            self.body.clone(),
            Some(&state.e_tag),
        ))?;
        match written {
            Conditional::Written(Some(e_tag)) => {
                state.e_tag = e_tag;
                state.renewed = renewed;
                Ok(true)
            }
            Conditional::Written(None) | Conditional::Conflict => {
                state.lost = true;
                Ok(false)
            }
        }
    }

    fn holds(&self) -> bool {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.as_ref()
            .is_some_and(|state| !state.lost && state.renewed.elapsed() < self.ttl * 3 / 4)
    }

    fn release(&self) -> Result<()> {
        let Some(state) = self.held.lock().unwrap_or_else(|e| e.into_inner()).take() else {
            return Ok(());
        };
        if state.lost {
            return Ok(());
        }
        // Only our own version: a lease taken over meanwhile stays with its new holder.
        let key = layout::gc_lease();
        block_on(async {
            let current = self.remote.head(&key).await?;
            if current.and_then(|meta| meta.e_tag).as_deref() == Some(state.e_tag.as_str()) {
                self.remote.delete(&key).await?;
            }
            Ok(())
        })
    }
}

impl Drop for ObjectLease {
    fn drop(&mut self) {
        let _ = self.release();
    }
}
