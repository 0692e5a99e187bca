//! shardgate-meta: the metadata store.
//!
//! What a deployment must remember: the table rules (which tables are
//! sharded, how, and which are reference tables) and the shard-map version.
//! [`MetaStore`] is the interface; [`FileStore`] the embedded, durable
//! implementation (a JSON document replaced atomically: write a temporary
//! file, fsync it, rename it over the old one, fsync the directory). An etcd
//! implementation for several routers plugs in behind the same trait.

#![warn(missing_docs)]

pub mod error;
pub mod txlog;

pub use error::MetaError;
pub use txlog::DecisionLog;

use serde::{Deserialize, Serialize};
use shardgate_core::TableRule;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Everything the store holds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Grows by one with every saved change.
    pub version: u64,
    /// The shard names this metadata was written for, in order.
    #[serde(default)]
    pub shards: Vec<String>,
    /// Table rules.
    #[serde(default)]
    pub rules: Vec<TableRule>,
    /// Columns that default to `shardgate.next_id()` (filled in by the
    /// router), by table name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub id_defaults: BTreeMap<String, Vec<String>>,
}

/// A durable, versioned store of [`Metadata`].
pub trait MetaStore: Send + Sync {
    /// The current metadata (empty, version 0, if nothing was saved).
    ///
    /// # Errors
    /// The store cannot be read or its contents are invalid.
    fn load(&self) -> Result<Metadata, MetaError>;

    /// Save `next` if the stored version is still `expected`; `next.version`
    /// becomes `expected + 1`. Returns the saved metadata.
    ///
    /// # Errors
    /// [`MetaError::Conflict`] when another writer saved first; I/O errors.
    fn save(&self, expected: u64, next: Metadata) -> Result<Metadata, MetaError>;

    /// Lease a node number (0..`nodes`) to `owner` until `now_ms + ttl_ms`:
    /// the one `owner` holds already, else the first free one (its lease
    /// expired or was never taken) counting up from `preferred`. Calling it
    /// again renews the lease.
    ///
    /// # Errors
    /// [`MetaError::NoNode`] when every number is leased to someone else;
    /// I/O errors.
    fn lease_node(
        &self,
        owner: &str,
        nodes: usize,
        preferred: u16,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<u16, MetaError>;
}

/// One leased node number.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLease {
    /// The node number.
    pub node: u16,
    /// Who holds it (a router id).
    pub owner: String,
    /// Unix milliseconds when the lease ends unless renewed.
    pub expires_ms: u64,
}

/// The embedded store: one JSON file.
pub struct FileStore {
    path: PathBuf,
    lock: Mutex<()>,
}

impl FileStore {
    /// A store kept at `path` (created on first save).
    pub fn new(path: impl AsRef<Path>) -> FileStore {
        FileStore {
            path: path.as_ref().to_path_buf(),
            lock: Mutex::new(()),
        }
    }

    fn read(&self) -> Result<Metadata, MetaError> {
        match std::fs::read(&self.path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| MetaError::Corrupt(self.path.display().to_string(), e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Metadata::default()),
            Err(e) => Err(MetaError::Io(self.path.display().to_string(), e)),
        }
    }
}

impl MetaStore for FileStore {
    fn load(&self) -> Result<Metadata, MetaError> {
        let _g = self.lock.lock().map_err(|_| MetaError::Poisoned)?;
        self.read()
    }

    fn save(&self, expected: u64, mut next: Metadata) -> Result<Metadata, MetaError> {
        let _g = self.lock.lock().map_err(|_| MetaError::Poisoned)?;
        let cur = self.read()?;
        if cur.version != expected {
            return Err(MetaError::Conflict {
                expected,
                found: cur.version,
            });
        }
        next.version = expected + 1;
        let io = |e| MetaError::Io(self.path.display().to_string(), e);
        let dir = self
            .path
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(io)?;
        let tmp = self.path.with_extension("json.tmp");
        {
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            let body = serde_json::to_vec_pretty(&next)
                .map_err(|e| MetaError::Corrupt(tmp.display().to_string(), e.to_string()))?;
            f.write_all(&body).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(next)
    }

    fn lease_node(
        &self,
        owner: &str,
        nodes: usize,
        preferred: u16,
        now_ms: u64,
        ttl_ms: u64,
    ) -> Result<u16, MetaError> {
        let _g = self.lock.lock().map_err(|_| MetaError::Poisoned)?;
        // Leases live beside the metadata, so that renewing one does not
        // make a new metadata version (which would flush plan caches).
        let path = self.path.with_file_name("leases.json");
        let mut leases: Vec<NodeLease> = match std::fs::read(&path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| MetaError::Corrupt(path.display().to_string(), e.to_string()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(MetaError::Io(path.display().to_string(), e)),
        };
        let node = match leases.iter().find(|l| l.owner == owner) {
            Some(l) => l.node,
            None => (0..nodes.min(u16::MAX as usize + 1))
                .map(|i| ((preferred as usize + i) % nodes.max(1)) as u16)
                .find(|n| !leases.iter().any(|l| l.node == *n && l.expires_ms > now_ms))
                .ok_or(MetaError::NoNode(nodes))?,
        };
        leases.retain(|l| l.node != node && l.owner != owner);
        leases.push(NodeLease {
            node,
            owner: owner.to_string(),
            expires_ms: now_ms + ttl_ms,
        });
        leases.sort_by_key(|l| l.node);
        let io = |e| MetaError::Io(path.display().to_string(), e);
        let tmp = path.with_extension("json.tmp");
        {
            let mut f = std::fs::File::create(&tmp).map_err(io)?;
            let body = serde_json::to_vec_pretty(&leases)
                .map_err(|e| MetaError::Corrupt(tmp.display().to_string(), e.to_string()))?;
            f.write_all(&body).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &path).map_err(io)?;
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shardgate_core::{ShardId, Strategy};

    #[test]
    fn node_leases_are_exclusive_until_they_expire() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("meta.json"));
        assert_eq!(store.lease_node("a", 2, 0, 1000, 100).unwrap(), 0);
        // b prefers 0, which a holds: the next free one.
        assert_eq!(store.lease_node("b", 2, 0, 1000, 100).unwrap(), 1);
        // Renewal keeps the number.
        assert_eq!(store.lease_node("a", 2, 1, 1050, 100).unwrap(), 0);
        assert!(matches!(
            store.lease_node("c", 2, 0, 1090, 100),
            Err(MetaError::NoNode(2))
        ));
        // b's lease ran out at 1100: c may take 1.
        assert_eq!(store.lease_node("c", 2, 0, 1101, 100).unwrap(), 1);
        // Leases do not touch the metadata version.
        assert_eq!(store.load().unwrap().version, 0);
    }

    #[test]
    fn saves_atomically_with_versions() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileStore::new(dir.path().join("meta.json"));
        assert_eq!(store.load().unwrap(), Metadata::default());
        let rule = TableRule::sharded(
            "orders",
            vec!["customer_id".into()],
            Strategy::hash(&[ShardId(0), ShardId(1)]).unwrap(),
        );
        let m = Metadata {
            version: 0,
            shards: vec!["s0".into(), "s1".into()],
            rules: vec![rule],
            id_defaults: [("orders".to_string(), vec!["id".to_string()])].into(),
        };
        let saved = store.save(0, m.clone()).unwrap();
        assert_eq!(saved.version, 1);
        // A second store on the same file sees it (durable, not in memory).
        let again = FileStore::new(dir.path().join("meta.json")).load().unwrap();
        assert_eq!(again, saved);
        assert!(matches!(
            store.save(0, m),
            Err(MetaError::Conflict {
                expected: 0,
                found: 1
            })
        ));
        std::fs::write(dir.path().join("meta.json"), b"{not json").unwrap();
        assert!(matches!(store.load(), Err(MetaError::Corrupt(..))));
    }
}
