//! Cache invalidation across nodes. A write invalidates this node's caches at
//! once and publishes the same invalidation on PostgreSQL's `veneer_invalidate`
//! channel; every node listens on its own connection and applies what others
//! publish within a round trip. It owns that protocol, the listener task and
//! the rules for what a node may still trust; the caches are `cache`'s and the
//! transport (`NOTIFY`, the listening session) is `storage`'s.
//!
//! What a node trusts:
//! - **Feed connected**: cached tenant state is right until an invalidation
//!   arrives (or its TTL runs out).
//! - **Feed lost** (listener connection dropped): invalidations may be missed,
//!   so every cache is flushed and requests read the database again. The node
//!   reconnects with backoff and flushes once more when the feed is back, for
//!   what was published while it was away.
//! - **Database unreachable**: a tenant state read from the database since the
//!   feed last (re)connected, and not invalidated since, is served as the last
//!   known state ("stale if error"): a warm tenant keeps its configuration
//!   through an outage instead of turning into 503s. While the database is down
//!   nobody can write to it, so that state is the current one — unless this node
//!   alone is cut off, in which case it is at most as old as the cut.
//!
//! A load racing with an invalidation must not put the old state back: loads
//! note the [`epoch`](Invalidation::epoch) before reading and only cache their
//! result if no invalidation happened meanwhile.
//!
//! Own notifications are recognised by the node id in the payload and skipped:
//! this node already applied them before publishing.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moka::sync::Cache;
use rand::Rng;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::cache::{Caches, HostKey, MemberKey, state_weight};
use crate::storage::{Backend, NotificationListener, Storage, TenantRecord};
use crate::tenancy::{TenantId, TenantState};

/// The PostgreSQL channel invalidations travel on.
pub const CHANNEL: &str = "veneer_invalidate";

/// A listener silent for this long is pinged.
const PING_AFTER: Duration = Duration::from_secs(5);
/// A ping (or a connection attempt) not answered within this is a lost feed.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);
/// First and largest pause between reconnection attempts.
const RECONNECT_MIN: Duration = Duration::from_millis(100);
const RECONNECT_MAX: Duration = Duration::from_secs(5);
/// Attempts to publish one invalidation before giving up (then the other nodes
/// hold the old state until its TTL; a database outage long enough to exhaust
/// these also drops their feeds, which flushes them).
const PUBLISH_TRIES: u32 = 5;

/// One invalidation on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Message {
    /// The publishing node.
    node: String,
    #[serde(flatten)]
    what: What,
}

/// What to forget.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum What {
    /// Everything derived from one tenant's state.
    Tenant { tenant: TenantId },
    /// Every host-to-tenant mapping.
    Hosts,
    /// One member's revocation time (their membership or role changed).
    Member { tenant: TenantId, user: String },
    /// The base configuration was reloaded: reload it from this node's own
    /// `--base-config` directory, and forget everything derived from the old.
    Base,
}

/// This node's side of the invalidation protocol. Cheap to clone.
#[derive(Clone)]
pub struct Invalidation(Arc<Inner>);

struct Inner {
    node: String,
    caches: Caches,
    /// Bumped (under the lock) by every invalidation; loads compare it.
    epoch: Mutex<u64>,
    /// Tenant states read while the feed was connected, minus invalidated ones.
    last_known: Cache<TenantId, Arc<TenantState>>,
    connected: AtomicBool,
    /// To the publisher task; `None` on SQLite (one node).
    publish: Option<mpsc::UnboundedSender<What>>,
    /// Bumped when another node reloaded the base configuration (the state
    /// reloads this node's: [`Invalidation::base_reloads`]).
    base_reloads: tokio::sync::watch::Sender<u64>,
}

impl std::fmt::Debug for Invalidation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invalidation")
            .field("node", &self.0.node)
            .field("connected", &self.connected())
            .finish_non_exhaustive()
    }
}

impl Invalidation {
    /// Sets up invalidation for `caches`. On PostgreSQL it starts the publisher
    /// and the listener (on `database_url`) on the current runtime; they stop
    /// when every clone of the returned value is gone.
    pub fn start(caches: Caches, storage: &Storage, database_url: &str) -> Self {
        let node = format!("{}-{:08x}", std::process::id(), rand::rng().random::<u32>());
        let shared = storage.backend() == Backend::Postgres;
        let (tx, rx) = if shared {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let capacity = caches.tenant_capacity();
        let this = Self(Arc::new(Inner {
            node,
            caches,
            epoch: Mutex::new(0),
            // Weighed like the tenant cache, so the fallback cannot hold more
            // state than the cache it backs.
            last_known: Cache::builder()
                .weigher(|_, state: &Arc<TenantState>| state_weight(state))
                .max_capacity(capacity)
                .time_to_idle(Duration::from_secs(24 * 3_600))
                .build(),
            // One node: nothing to miss.
            connected: AtomicBool::new(!shared),
            publish: tx,
            base_reloads: tokio::sync::watch::Sender::new(0),
        }));
        if let Some(rx) = rx {
            tokio::spawn(publisher(storage.clone(), this.0.node.clone(), rx));
            tokio::spawn(listen(Arc::downgrade(&this.0), database_url.to_owned()));
        }
        this
    }

    /// Whether invalidations from other nodes are being received (always on
    /// SQLite).
    pub fn connected(&self) -> bool {
        self.0.connected.load(Ordering::Relaxed)
    }

    /// Forgets a tenant's cached state here and on every other node.
    pub fn tenant(&self, id: &TenantId) {
        self.0.apply_tenant(id);
        self.publish(What::Tenant { tenant: id.clone() });
    }

    /// Forgets a member's cached revocation time here and on every other
    /// node, so the next request of theirs reads the new one.
    pub fn member(&self, tenant: &TenantId, user: &str) {
        self.0.apply_member(&MemberKey::new(tenant, user));
        self.publish(What::Member {
            tenant: tenant.clone(),
            user: user.to_owned(),
        });
    }

    /// Caches a member's revocation time (or that there is none) read from
    /// the database since `epoch`, unless an invalidation happened meanwhile.
    pub fn loaded_member(&self, epoch: u64, key: MemberKey, revoked_before: Option<i64>) {
        let current = self.0.lock_epoch();
        if *current == epoch {
            self.0.caches.put_member(key, revoked_before);
        }
    }

    /// Forgets every host mapping here and on every other node.
    pub fn hosts(&self) {
        self.0.apply_hosts();
        self.publish(What::Hosts);
    }

    /// Forgets everything derived from the base configuration here (this
    /// node reloaded it) and asks every other node to reload theirs.
    pub fn base(&self) {
        self.forget_all();
        self.publish(What::Base);
    }

    /// Forgets everything cached on this node (the base it was derived from
    /// changed).
    pub fn forget_all(&self) {
        self.0.flush(false);
    }

    /// Changes each time another node asks this one to reload the base
    /// configuration.
    pub fn base_reloads(&self) -> tokio::sync::watch::Receiver<u64> {
        self.0.base_reloads.subscribe()
    }

    fn publish(&self, what: What) {
        if let Some(tx) = &self.0.publish {
            // The publisher only stops with the last clone of `self`.
            let _ = tx.send(what);
        }
    }

    /// The current epoch, to pass to [`loaded`](Self::loaded) after a load.
    pub fn epoch(&self) -> u64 {
        *self.0.lock_epoch()
    }

    /// Caches a tenant state read from the database since `epoch`, unless an
    /// invalidation happened meanwhile (then the state may be old already).
    pub fn loaded(&self, epoch: u64, state: Arc<TenantState>) {
        let current = self.0.lock_epoch();
        if *current != epoch {
            return;
        }
        self.0.caches.put_tenant(state.clone());
        self.0.last_known.insert(state.record.id.clone(), state);
    }

    /// Caches a tenant row (or that there is none) read from the database since
    /// `epoch`, unless an invalidation happened meanwhile.
    pub fn loaded_record(&self, epoch: u64, id: TenantId, record: Option<Arc<TenantRecord>>) {
        let current = self.0.lock_epoch();
        if *current == epoch {
            self.0.caches.put_record(id, record);
        }
    }

    /// Caches a host's tenant (or that it has none) read from the database
    /// since `epoch`, unless an invalidation happened meanwhile.
    pub fn loaded_host(&self, epoch: u64, key: HostKey, tenant: Option<TenantId>) {
        let current = self.0.lock_epoch();
        if *current == epoch {
            self.0.caches.put_host(key, tenant);
        }
    }

    /// The row of a tenant's last known state, for when the database cannot be
    /// read (not cached again: the state itself is, once a request needs it).
    pub fn last_known_record(&self, id: &TenantId) -> Option<TenantRecord> {
        self.0.last_known.get(id).map(|state| state.record.clone())
    }

    /// The last known state of a tenant, for when the database cannot be read;
    /// cached again (if no invalidation happened since `epoch`) so the next
    /// requests do not wait for the database either.
    pub fn last_known(&self, epoch: u64, id: &TenantId) -> Option<Arc<TenantState>> {
        let current = self.0.lock_epoch();
        let state = self.0.last_known.get(id)?;
        if *current == epoch {
            self.0.caches.put_tenant(state.clone());
        }
        Some(state)
    }
}

impl Inner {
    fn lock_epoch(&self) -> std::sync::MutexGuard<'_, u64> {
        // The guarded value is a counter: a panic elsewhere cannot leave it torn.
        self.epoch
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn apply_tenant(&self, id: &TenantId) {
        let mut epoch = self.lock_epoch();
        *epoch += 1;
        self.caches.invalidate_tenant(id);
        self.last_known.invalidate(id);
    }

    fn apply_member(&self, key: &MemberKey) {
        let mut epoch = self.lock_epoch();
        *epoch += 1;
        self.caches.invalidate_member(key);
    }

    fn apply_hosts(&self) {
        let mut epoch = self.lock_epoch();
        *epoch += 1;
        self.caches.invalidate_hosts();
    }

    /// Forgets everything cached. `forget_last_known` also drops the fallback
    /// states (on reconnection: they may have missed invalidations).
    fn flush(&self, forget_last_known: bool) {
        let mut epoch = self.lock_epoch();
        *epoch += 1;
        self.caches.invalidate_all();
        if forget_last_known {
            self.last_known.invalidate_all();
        }
    }

    fn apply(&self, payload: &str) {
        match serde_json::from_str::<Message>(payload) {
            Ok(message) if message.node == self.node => {}
            Ok(Message {
                what: What::Tenant { tenant },
                ..
            }) => self.apply_tenant(&tenant),
            Ok(Message {
                what: What::Hosts, ..
            }) => self.apply_hosts(),
            Ok(Message {
                what: What::Member { tenant, user },
                ..
            }) => self.apply_member(&MemberKey::new(&tenant, &user)),
            Ok(Message {
                what: What::Base, ..
            }) => self.base_reloads.send_modify(|n| *n += 1),
            Err(err) => {
                // From a newer or older node we do not understand: be safe.
                tracing::warn!(%err, payload, "unreadable invalidation; flushing the caches");
                self.flush(false);
            }
        }
    }
}

/// For a process that changed a tenant without serving (a `veneer tenant
/// import`): tells the nodes on the same PostgreSQL database to forget the
/// tenant and the host mappings. On SQLite there is no feed; a server on the
/// same file sees the change when its cached state expires.
pub async fn publish_tenant(storage: &Storage, tenant: &TenantId) {
    if storage.backend() != Backend::Postgres {
        return;
    }
    for what in [
        What::Tenant {
            tenant: tenant.clone(),
        },
        What::Hosts,
    ] {
        let message = Message {
            node: format!("cli-{}", std::process::id()),
            what,
        };
        let Ok(payload) = serde_json::to_string(&message) else {
            continue;
        };
        if let Err(err) = storage.notify(CHANNEL, &payload).await {
            tracing::warn!(%err, "could not tell the serving nodes to forget the tenant");
        }
    }
}

async fn publisher(storage: Storage, node: String, mut rx: mpsc::UnboundedReceiver<What>) {
    while let Some(what) = rx.recv().await {
        let payload = match serde_json::to_string(&Message {
            node: node.clone(),
            what,
        }) {
            Ok(payload) => payload,
            Err(err) => {
                tracing::error!(%err, "cannot encode an invalidation");
                continue;
            }
        };
        for attempt in 1..=PUBLISH_TRIES {
            match storage.notify(CHANNEL, &payload).await {
                Ok(()) => break,
                Err(err) if attempt < PUBLISH_TRIES => {
                    tracing::warn!(%err, attempt, "cannot publish an invalidation yet");
                    tokio::time::sleep(Duration::from_millis(100) * 2u32.pow(attempt)).await;
                }
                Err(err) => {
                    tracing::error!(%err, payload, "gave up publishing an invalidation");
                }
            }
        }
    }
}

/// The listener task: connect, flush, apply; on loss flush and reconnect.
async fn listen(inner: std::sync::Weak<Inner>, url: String) {
    let mut pause = RECONNECT_MIN;
    loop {
        if inner.strong_count() == 0 {
            return;
        }
        match NotificationListener::connect(&url, CHANNEL, ANSWER_WITHIN).await {
            Ok(mut listener) => {
                let Some(node) = inner.upgrade() else { return };
                // Whatever was cached before now may have missed notifications.
                node.flush(true);
                node.connected.store(true, Ordering::Relaxed);
                drop(node);
                tracing::info!("listening for cache invalidations from other nodes");
                pause = RECONNECT_MIN;
                let reason = receive(&inner, &mut listener).await;
                let Some(node) = inner.upgrade() else { return };
                node.connected.store(false, Ordering::Relaxed);
                node.flush(false);
                tracing::warn!(
                    %reason,
                    "lost the invalidation feed; flushed the caches, reconnecting"
                );
            }
            Err(err) => tracing::warn!(%err, retry_in = ?pause, "cannot listen for invalidations"),
        }
        let jitter = rand::rng().random_range(0..=pause.as_millis() as u64 / 2);
        tokio::time::sleep(pause + Duration::from_millis(jitter)).await;
        pause = (pause * 2).min(RECONNECT_MAX);
    }
}

/// Applies notifications until the session is lost; returns why.
async fn receive(inner: &std::sync::Weak<Inner>, listener: &mut NotificationListener) -> String {
    loop {
        match tokio::time::timeout(PING_AFTER, listener.recv()).await {
            Ok(Ok(Some(payload))) => match inner.upgrade() {
                Some(node) => node.apply(&payload),
                None => return "shutting down".into(),
            },
            Ok(Ok(None)) => return "connection closed".into(),
            Ok(Err(err)) => return err.to_string(),
            Err(_) => {
                if inner.strong_count() == 0 {
                    return "shutting down".into();
                }
                match tokio::time::timeout(ANSWER_WITHIN, listener.ping()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(err)) => return err.to_string(),
                    Err(_) => return "the database stopped answering".into(),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_name_their_node() {
        let tenant = TenantId::new("acme").unwrap();
        let message = Message {
            node: "n1".into(),
            what: What::Tenant {
                tenant: tenant.clone(),
            },
        };
        let text = serde_json::to_string(&message).unwrap();
        assert_eq!(text, r#"{"node":"n1","kind":"tenant","tenant":"acme"}"#);
        assert_eq!(serde_json::from_str::<Message>(&text).unwrap(), message);
        let hosts: Message = serde_json::from_str(r#"{"node":"n2","kind":"hosts"}"#).unwrap();
        assert_eq!(hosts.what, What::Hosts);
        let member: Message = serde_json::from_str(
            r#"{"node":"n3","kind":"member","tenant":"acme","user":"user_1"}"#,
        )
        .unwrap();
        assert_eq!(
            member.what,
            What::Member {
                tenant,
                user: "user_1".into()
            }
        );
    }
}
