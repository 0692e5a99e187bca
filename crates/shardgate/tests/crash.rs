//! The crash test of two-phase commit: clients move money between accounts
//! on different shards through shardgate while shardgate is killed with
//! SIGKILL at random moments and restarted. Each transfer updates two
//! accounts and records itself in a third table (three shards at most), in
//! one transaction. Afterwards: the total balance is unchanged, every
//! account's balance is exactly what the recorded transfers say (no
//! transfer half applied), every transfer a client saw commit is there, and
//! no prepared transaction is left on any shard within 10 s of a restart.
//! (`transactions.rs` kills shardgate deterministically between PREPARE
//! and COMMIT PREPARED; here the kills fall wherever they fall.)

mod common;

use common::PgCluster;
use rand::Rng;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ACCOUNTS: i64 = 40;
const START: i64 = 1000;
const CLIENTS: usize = 6;
const KILLS: usize = 5;

/// The gids of the prepared transactions on all shards.
fn prepared(c: &PgCluster) -> HashSet<String> {
    c.shards
        .iter()
        .flat_map(|s| {
            s.psql("SELECT gid FROM pg_prepared_xacts")
                .unwrap()
                .lines()
                .map(str::to_string)
                .collect::<Vec<_>>()
        })
        .collect()
}

async fn client_loop(
    port: Arc<AtomicU16>,
    stop: Arc<AtomicBool>,
    next_id: Arc<AtomicI64>,
    acked: Arc<Mutex<Vec<i64>>>,
) {
    while !stop.load(Ordering::Relaxed) {
        let url = format!(
            "host=127.0.0.1 port={} user=app dbname=app connect_timeout=5",
            port.load(Ordering::Relaxed)
        );
        let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        tokio::spawn(conn);
        while !stop.load(Ordering::Relaxed) {
            let (a, b, amount) = {
                let mut rng = rand::rng();
                let a = rng.random_range(1..=ACCOUNTS);
                let mut b = rng.random_range(1..=ACCOUNTS - 1);
                if b >= a {
                    b += 1;
                }
                (a, b, rng.random_range(1..=50i64))
            };
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            // Accounts are locked in id order, so transfers never wait on
            // each other in a cycle across shards.
            let (first, second) = if a < b {
                (
                    format!("balance - {amount} WHERE id = {a}"),
                    format!("balance + {amount} WHERE id = {b}"),
                )
            } else {
                (
                    format!("balance + {amount} WHERE id = {b}"),
                    format!("balance - {amount} WHERE id = {a}"),
                )
            };
            let sql = format!(
                "BEGIN; UPDATE accounts SET balance = {first}; UPDATE accounts SET balance = {second}; \
                 INSERT INTO transfers VALUES ({id}, {a}, {b}, {amount}); COMMIT"
            );
            match client.batch_execute(&sql).await {
                Ok(()) => acked.lock().unwrap().push(id),
                Err(_) if client.is_closed() => break,
                Err(_) => {
                    let _ = client.batch_execute("ROLLBACK").await;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bank_transfers_survive_router_kills() {
    let mut c = PgCluster::start(3, "");
    c.sg.psql("CREATE TABLE accounts (id bigint PRIMARY KEY, balance bigint NOT NULL)")
        .unwrap();
    c.sg.psql(
        "CREATE TABLE transfers (id bigint PRIMARY KEY, src bigint, dst bigint, amount bigint)",
    )
    .unwrap();
    c.sg.psql("SELECT shardgate.shard_table('accounts', 'id')")
        .unwrap();
    c.sg.psql("SELECT shardgate.shard_table('transfers', 'id')")
        .unwrap();
    let rows: Vec<String> = (1..=ACCOUNTS).map(|i| format!("({i}, {START})")).collect();
    c.sg.psql(&format!("INSERT INTO accounts VALUES {}", rows.join(",")))
        .unwrap();

    let port = Arc::new(AtomicU16::new(c.sg.port()));
    let stop = Arc::new(AtomicBool::new(false));
    let next_id = Arc::new(AtomicI64::new(1));
    let acked = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            tokio::spawn(client_loop(
                port.clone(),
                stop.clone(),
                next_id.clone(),
                acked.clone(),
            ))
        })
        .collect();

    let mut commits_between_kills = Vec::new();
    let mut left_behind = 0;
    for _ in 0..KILLS {
        let before = acked.lock().unwrap().len();
        let wait = rand::rng().random_range(400..1500);
        tokio::time::sleep(Duration::from_millis(wait)).await;
        tokio::task::block_in_place(|| {
            c.sg.kill();
            // What the dead router left prepared must be resolved within
            // 10 s of its restart (new transactions are prepared all the
            // time meanwhile: only the old ones count).
            let left = prepared(&c);
            left_behind += left.len();
            c.restart_sg(&[]);
            port.store(c.sg.port(), Ordering::Relaxed);
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let still: Vec<String> = prepared(&c).intersection(&left).cloned().collect();
                if still.is_empty() {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "prepared transactions {still:?} left 10 s after a restart; log:\n{}",
                    c.sg.log()
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        commits_between_kills.push(acked.lock().unwrap().len() - before);
    }
    // Let the clients work after the last restart, then stop them.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for t in clients {
        let _ = tokio::time::timeout(Duration::from_secs(30), t).await;
    }

    tokio::task::block_in_place(|| {
        assert!(prepared(&c).is_empty());
        let acked = acked.lock().unwrap().clone();
        assert!(
            commits_between_kills.iter().filter(|n| **n > 0).count() >= KILLS / 2,
            "too few transfers committed between kills: {commits_between_kills:?}"
        );
        // The total is unchanged.
        let total: i64 =
            c.sg.psql("SELECT sum(balance) FROM accounts")
                .unwrap()
                .parse()
                .unwrap();
        assert_eq!(total, ACCOUNTS * START);
        // Every account is exactly its start plus the recorded transfers.
        let mut want: HashMap<i64, i64> = (1..=ACCOUNTS).map(|i| (i, START)).collect();
        let transfers =
            c.sg.psql("SELECT id, src, dst, amount FROM transfers")
                .unwrap();
        let mut recorded = std::collections::HashSet::new();
        for line in transfers.lines() {
            let f: Vec<i64> = line.split('|').map(|x| x.parse().unwrap()).collect();
            recorded.insert(f[0]);
            *want.get_mut(&f[1]).unwrap() -= f[3];
            *want.get_mut(&f[2]).unwrap() += f[3];
        }
        let got = c.sg.psql("SELECT id, balance FROM accounts").unwrap();
        for line in got.lines() {
            let f: Vec<i64> = line.split('|').map(|x| x.parse().unwrap()).collect();
            assert_eq!(
                want[&f[0]], f[1],
                "account {} is not what its transfers say",
                f[0]
            );
        }
        // No acknowledged transfer is lost.
        let lost: Vec<&i64> = acked.iter().filter(|id| !recorded.contains(id)).collect();
        assert!(lost.is_empty(), "acknowledged transfers lost: {lost:?}");
        eprintln!(
            "crash test: {} transfers acknowledged, {} recorded, {KILLS} kills, commits between kills {commits_between_kills:?}, {left_behind} prepared transactions left by killed routers",
            acked.len(),
            recorded.len()
        );
    });
}
