//! The shardgate binary: command line, configuration and wiring.

mod config;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use config::Config;
use shardgate_backend::pg::{PgConfig, PgConn};
use shardgate_backend::sqlite::LiteShard;
use shardgate_backend::{Pool, ShardTarget};
use shardgate_core::{ShardId, TableKind};
use shardgate_meta::FileStore;
use shardgate_server::Router;
use std::path::PathBuf;
use std::sync::Arc;

/// shardgate: one PostgreSQL endpoint in front of many shards.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve PostgreSQL clients. With no --config, serves on 4 embedded
    /// SQLite shards under --data-dir.
    Serve {
        /// A TOML configuration file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Address to listen on (default 127.0.0.1:6432).
        #[arg(long)]
        listen: Option<String>,
        /// Directory for the metadata store and embedded shards (default ./shardgate-data).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SHARDGATE_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    // The sessions run on threads with STACK of stack (the main thread's
    // is the system's default, so a one-thread runtime runs on a thread of
    // its own too).
    let main = std::thread::Builder::new()
        .name("shardgate-main".into())
        .stack_size(STACK)
        .spawn(move || -> Result<()> {
            let rt = runtime()?;
            match cli.cmd {
                Cmd::Serve {
                    config,
                    listen,
                    data_dir,
                } => rt.block_on(serve(config, listen, data_dir)),
            }
        })?;
    main.join()
        .unwrap_or_else(|_| Err(anyhow::anyhow!("shardgate's main thread panicked")))
}

/// Stack size of the threads sessions run on: room for walking statements
/// as deep as the parser accepts ([`shardgate_sql::parse::RECURSION_LIMIT`]),
/// in debug builds too. Only the pages used are ever resident.
const STACK: usize = 64 << 20;

/// The async runtime. `SHARDGATE_WORKERS` sets the number of worker
/// threads (default: one per CPU); `1` runs every session on one thread,
/// like pgbouncer, which on small machines saves the cross-thread
/// wake-ups of a work-stealing scheduler.
fn runtime() -> Result<tokio::runtime::Runtime> {
    let workers = match std::env::var("SHARDGATE_WORKERS") {
        Ok(v) => Some(
            v.parse::<usize>()
                .ok()
                .filter(|n| *n > 0)
                .with_context(|| format!("SHARDGATE_WORKERS={v}: expected a positive number"))?,
        ),
        Err(_) => None,
    };
    let rt = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?,
        Some(n) => tokio::runtime::Builder::new_multi_thread()
            .worker_threads(n)
            .thread_stack_size(STACK)
            .enable_all()
            .build()?,
        None => tokio::runtime::Builder::new_multi_thread()
            .thread_stack_size(STACK)
            .enable_all()
            .build()?,
    };
    Ok(rt)
}

async fn serve(
    config: Option<PathBuf>,
    listen: Option<String>,
    data_dir: Option<PathBuf>,
) -> Result<()> {
    let (cfg, file) = match &config {
        Some(p) => (Config::load(p)?, p.display().to_string()),
        None => (
            Config::embedded(
                &data_dir
                    .clone()
                    .unwrap_or_else(|| PathBuf::from("shardgate-data")),
            ),
            "(embedded default)".into(),
        ),
    };
    let data_dir = data_dir
        .or(cfg.data_dir.clone())
        .unwrap_or_else(|| PathBuf::from("shardgate-data"));
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create data directory {}", data_dir.display()))?;
    // One router per data directory: its router id, decision log and
    // leases are its own.
    let lock_path = data_dir.join("shardgate.lock");
    let data_lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("cannot open {}", lock_path.display()))?;
    if data_lock.try_lock().is_err() {
        bail!(
            "data directory {} is in use by another shardgate; give each router its own --data-dir",
            data_dir.display()
        );
    }
    let listen = listen
        .or(cfg.listen.clone())
        .unwrap_or_else(|| "127.0.0.1:6432".into());
    let rules = cfg.rules(&file)?;
    let pool_size = cfg.pool_size.unwrap_or(64);
    let mut pools = Vec::new();
    let mut server_version = "15.0".to_string();
    let mut time_zone: Option<String> = None;
    // Text sort keys merge bytewise where every shard's database orders
    // text bytewise by default (C collation; SQLite compares bytewise);
    // otherwise a shard sorts them.
    let mut bytewise_text = true;
    for (i, s) in cfg.shards.iter().enumerate() {
        let target = match (&s.url, &s.sqlite) {
            (Some(u), None) => ShardTarget::Pg(PgConfig::from_url(u).map_err(|e| {
                anyhow::anyhow!("config file {file}: shards[{i}] ({}).url: {e}", s.name)
            })?),
            (None, Some(p)) => ShardTarget::Lite(Arc::new(LiteShard::new(p.clone()))),
            _ => bail!(
                "config file {file}: shards[{i}] ({}): give exactly one of `url` or `sqlite`",
                s.name
            ),
        };
        if let ShardTarget::Pg(pc) = &target {
            match PgConn::connect(pc).await {
                Ok(c) => {
                    if let Some((_, v)) =
                        c.server_params.iter().find(|(k, _)| k == "server_version")
                    {
                        server_version = v.split_whitespace().next().unwrap_or(v).to_string();
                    }
                    if time_zone.is_none() {
                        time_zone = c
                            .server_params
                            .iter()
                            .find(|(k, _)| k == "TimeZone")
                            .map(|(_, v)| v.clone());
                    }
                    let mut c = shardgate_backend::ShardConn::Pg(c);
                    let coll = c
                        .simple_rows(shardgate_backend::pg::DATABASE_COLLATION_SQL)
                        .await
                        .ok()
                        .and_then(|r| r.into_iter().next());
                    let get = |i: usize| {
                        coll.as_ref()
                            .and_then(|r| r.get(i).cloned().flatten())
                            .unwrap_or_default()
                    };
                    if !shardgate_backend::collation_is_bytewise(
                        &get(0),
                        &get(1),
                        &get(2),
                        get(3) == "UTF8",
                    ) {
                        bytewise_text = false;
                    }
                    let prepared = c
                        .simple_rows("SHOW max_prepared_transactions")
                        .await
                        .ok()
                        .and_then(|r| r.into_iter().next())
                        .and_then(|r| r.into_iter().next().flatten());
                    if prepared.as_deref() == Some("0") {
                        tracing::warn!(
                            "shard {} has max_prepared_transactions = 0: transactions that write to it and another shard will fail to commit; set max_prepared_transactions > 0 (e.g. 100) on every shard",
                            s.name
                        );
                    }
                }
                Err(e) => {
                    bytewise_text = false;
                    tracing::warn!(
                        "shard {} ({}:{}) is not reachable yet: {e}",
                        s.name,
                        pc.host,
                        pc.port
                    )
                }
            }
        }
        pools.push(Arc::new(
            Pool::new(ShardId(i as u32), &s.name, target, pool_size)
                .with_lanes(cfg.lanes.unwrap_or(0)),
        ));
    }
    let meta = Arc::new(FileStore::new(data_dir.join("meta.json")));
    let mut router = Router::new(pools, meta, rules, server_version, bytewise_text)?;
    if let Some(tz) = time_zone {
        router.time_zone = tz;
    }
    if let Some(n) = cfg.max_merge_rows {
        router.max_merge_rows = n;
    }
    if let Some(n) = cfg.max_merge_bytes {
        router.max_merge_bytes = n;
    }
    if let Some(b) = cfg.prepare_simple {
        router.prepare_simple = b;
    }
    let router_id = match &cfg.router_id {
        Some(id) => id.clone(),
        None => stored_router_id(&data_dir)?,
    };
    if let Some(n) = cfg.id_node {
        if n > shardgate_core::snowflake::MAX_NODE {
            bail!(
                "config file {file}: id_node = {n}: use 0 to {}",
                shardgate_core::snowflake::MAX_NODE
            );
        }
        router.fixed_node = Some(n);
    }
    let log = shardgate_meta::DecisionLog::open(data_dir.join("decisions.log"))?;
    router.set_decision_log(&router_id, Arc::new(log))?;
    let router = Arc::new(router);
    // Transactions a crash left prepared are resolved before clients come.
    match shardgate_server::twopc::recover(&router).await {
        Ok(r) if r.unreachable > 0 => tracing::warn!(
            "transaction recovery could not check {} shard(s); it retries every 10 s",
            r.unreachable
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("transaction recovery failed: {e}"),
    }
    tokio::spawn(shardgate_server::twopc::recovery_loop(
        router.clone(),
        std::time::Duration::from_secs(10),
    ));
    // Deadlocks across shards, which no shard sees alone.
    tokio::spawn(shardgate_server::deadlock::detector_loop(
        router.clone(),
        std::time::Duration::from_secs(1),
    ));
    // The node number for shardgate.next_id(), leased and kept renewed.
    if let Err(e) = router.renew_node_lease() {
        tracing::warn!("no node number for shardgate.next_id(): {e}");
    }
    let r = router.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(std::time::Duration::from_secs(10)).await;
            let r = r.clone();
            match tokio::task::spawn_blocking(move || r.renew_node_lease()).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => tracing::warn!("could not renew the node lease for ids: {e}"),
                Err(e) => tracing::warn!("node lease task failed: {e}"),
            }
        }
    });
    learn_key_types(&router).await;
    let listener = tokio::net::TcpListener::bind(&listen)
        .await
        .with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let kind = if config.is_none() {
        "4 embedded shards"
    } else {
        "configured shards"
    };
    println!(
        "shardgate listening on {addr} with {} ({kind}); data in {}",
        router.pools.len(),
        data_dir.display()
    );
    println!(
        "connect with: psql -h {} -p {} -U app app",
        addr.ip(),
        addr.port()
    );
    tokio::select! {
        r = shardgate_server::serve(router, listener) => r?,
        _ = tokio::signal::ctrl_c() => println!("shardgate: shutting down"),
    }
    drop(data_lock);
    Ok(())
}

/// This router's id, kept in the data directory (made up on first start):
/// the gids of its prepared transactions carry it, so that it recovers its
/// own and no other router's.
fn stored_router_id(data_dir: &std::path::Path) -> Result<String> {
    let path = data_dir.join("router_id");
    if let Ok(s) = std::fs::read_to_string(&path) {
        let id = s.trim().to_string();
        if !id.is_empty() {
            return Ok(id);
        }
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let id = format!(
        "{:08x}",
        (nanos as u64 ^ ((std::process::id() as u64) << 32)) as u32
    );
    std::fs::write(&path, format!("{id}\n"))
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(id)
}

/// Rules declared in the configuration learn their key types from tables
/// that already exist.
async fn learn_key_types(router: &Router) {
    let topo = router.topology();
    for r in topo.rules.values() {
        if let TableKind::Sharded {
            key_types,
            all_columns,
            ..
        } = &r.kind
        {
            if key_types.iter().all(Option::is_some) && !all_columns.is_empty() {
                continue;
            }
            if let Ok(cols) = shardgate_server::admin::table_columns(router, &r.table).await
                && let Err(e) =
                    shardgate_server::admin::learn_columns(router, &r.table, &cols).await
            {
                tracing::warn!(
                    "could not record the key types of {}: {}",
                    r.table,
                    e.message
                );
            }
        }
    }
}
