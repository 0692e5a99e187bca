//! Per-shard connection pools.
//!
//! A pool keeps idle connections to one shard and hands them out for the
//! length of a transaction (or one statement outside a transaction). A
//! semaphore caps the connections a shard gets; a connection is returned
//! only when it is idle and healthy, otherwise it is dropped (closed).

use crate::ShardConn;
use crate::error::BackendError;
use crate::lane::Lane;
use crate::pg::{PgConfig, PgConn};
use crate::sqlite::{LiteConn, LiteShard};
use shardgate_core::ShardId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What a shard is.
#[derive(Clone)]
pub enum ShardTarget {
    /// A PostgreSQL server.
    Pg(PgConfig),
    /// An embedded SQLite database file.
    Lite(Arc<LiteShard>),
}

/// The pool of one shard.
pub struct Pool {
    /// The shard's id.
    pub shard: ShardId,
    /// The shard's configured name.
    pub name: String,
    /// How to reach it.
    pub target: ShardTarget,
    idle: Mutex<Vec<ShardConn>>,
    limit: Arc<Semaphore>,
    checkout_timeout: Duration,
    /// Moves on with every schema change made through shardgate: a
    /// connection's statements prepared before one are forgotten at its
    /// next checkout (a fresh Parse after DDL must plan afresh, as on one
    /// PostgreSQL, not find a statement whose result type changed).
    schema: AtomicU64,
    /// Shared pipelined connections for autocommit reads (PostgreSQL
    /// shards; started on first use): see [`crate::lane`].
    lanes: std::sync::OnceLock<Vec<Lane>>,
    lane_count: usize,
}

/// A connection checked out of a pool; give it back with [`Pool::checkin`],
/// or drop it to close it.
pub struct PooledConn {
    /// The connection.
    pub conn: ShardConn,
    /// The shard it belongs to.
    pub shard: ShardId,
    _permit: OwnedSemaphorePermit,
}

impl std::ops::Deref for PooledConn {
    type Target = ShardConn;
    fn deref(&self) -> &ShardConn {
        &self.conn
    }
}

impl std::ops::DerefMut for PooledConn {
    fn deref_mut(&mut self) -> &mut ShardConn {
        &mut self.conn
    }
}

impl Pool {
    /// A pool of at most `max` connections.
    pub fn new(shard: ShardId, name: &str, target: ShardTarget, max: usize) -> Pool {
        Pool {
            shard,
            name: name.to_string(),
            target,
            idle: Mutex::new(Vec::new()),
            limit: Arc::new(Semaphore::new(max.max(1))),
            checkout_timeout: Duration::from_secs(30),
            schema: AtomicU64::new(0),
            lanes: std::sync::OnceLock::new(),
            lane_count: 0,
        }
    }

    /// Carry autocommit reads on `n` shared pipelined connections (0: none;
    /// only PostgreSQL shards have lanes).
    pub fn with_lanes(mut self, n: usize) -> Pool {
        self.lane_count = n;
        self
    }

    /// The least busy of this shard's lanes, if it has any (started on the
    /// first call, which must be within a tokio runtime).
    pub fn lane(&self) -> Option<&Lane> {
        if self.lane_count == 0 {
            return None;
        }
        let ShardTarget::Pg(cfg) = &self.target else {
            return None;
        };
        let lanes = self.lanes.get_or_init(|| {
            (0..self.lane_count)
                .map(|_| Lane::start(cfg.clone()))
                .collect()
        });
        lanes.iter().min_by_key(|l| l.load())
    }

    /// Take an idle connection or open a new one.
    ///
    /// # Errors
    /// [`BackendError::PoolTimeout`] if none frees up in time, or the errors
    /// of opening a connection.
    ///
    /// # Cancel safety
    /// Cancel safe: nothing is taken until it is returned.
    pub async fn checkout(&self) -> Result<PooledConn, BackendError> {
        // A free slot is taken at once, without arming a timer.
        let permit = match self.limit.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(tokio::sync::TryAcquireError::Closed) => return Err(BackendError::Closed),
            Err(tokio::sync::TryAcquireError::NoPermits) => {
                tokio::time::timeout(self.checkout_timeout, self.limit.clone().acquire_owned())
                    .await
                    .map_err(|_| BackendError::PoolTimeout(self.name.clone()))?
                    .map_err(|_| BackendError::Closed)?
            }
        };
        // An idle connection the shard closed meanwhile (a restart, an
        // idle timeout) is dropped here, not handed to a statement.
        let mut conn = loop {
            let idle = self.idle.lock().map(|mut v| v.pop()).unwrap_or(None);
            match idle {
                Some(c) if c.is_alive() => break c,
                Some(_) => tracing::debug!(shard = %self.name, "dropping a closed idle connection"),
                None => break self.connect().await?,
            }
        };
        let schema = self.schema.load(Ordering::Acquire);
        if *conn.schema() != schema {
            conn.forget_prepared();
            *conn.schema() = schema;
        }
        Ok(PooledConn {
            conn,
            shard: self.shard,
            _permit: permit,
        })
    }

    /// A schema change went through shardgate: every connection of this
    /// pool forgets its prepared statements at its next checkout.
    pub fn schema_changed(&self) {
        self.schema.fetch_add(1, Ordering::AcqRel);
    }

    /// How many schema changes this pool has been told of.
    pub fn schema_generation(&self) -> u64 {
        self.schema.load(Ordering::Acquire)
    }

    /// Open a new connection (not counted against the pool's limit).
    ///
    /// # Errors
    /// Connection and authentication errors.
    pub async fn connect(&self) -> Result<ShardConn, BackendError> {
        match &self.target {
            ShardTarget::Pg(cfg) => Ok(ShardConn::Pg(PgConn::connect(cfg).await?)),
            ShardTarget::Lite(shard) => Ok(ShardConn::Lite(LiteConn::open(shard.clone())?)),
        }
    }

    /// Return a connection. One that is not idle (unread replies, an open
    /// transaction, an extended-protocol batch without Sync) is closed
    /// instead: it must never reach another session.
    pub fn checkin(&self, c: PooledConn) {
        if !c.conn.is_idle() {
            tracing::debug!(shard = %self.name, "closing a shard connection that is not idle");
            return;
        }
        if let Ok(mut v) = self.idle.lock() {
            v.push(c.conn);
        }
    }

    /// Send a cancel request for a connection of this pool.
    pub async fn cancel(&self, pid: i32, secret: i32) {
        if let ShardTarget::Pg(cfg) = &self.target {
            let _ = crate::pg::cancel(cfg, pid, secret).await;
        }
    }
}
