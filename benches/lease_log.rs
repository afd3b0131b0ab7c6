//! Benchmark of the durable half of the DHCP group commit: `Store::write_leases` on the
//! default SQLite store (WAL, `synchronous = FULL`), for batch sizes from one lease (an
//! idle server: one fsync per ACK) to a boot storm's batches. Plain `std::time`
//! measurement; run with `cargo bench --bench lease_log`. Set `TABULA_BENCH_STORE` to a
//! `postgres://` URL to measure a PostgreSQL server instead.

use std::net::Ipv4Addr;
use std::time::Instant;

use tabula::boot::Mac;
use tabula::store::{LeaseRow, LeaseWrite, Store};

fn batch(round: u32, size: u32) -> Vec<LeaseWrite> {
    (0..size)
        .map(|i| {
            let n = (round * size + i) % 60_000;
            let b = n.to_be_bytes();
            LeaseWrite::Upsert(LeaseRow {
                address: Ipv4Addr::new(10, 0, b[2], b[3]),
                mac: Mac([0x52, 0x54, 0, 0, b[2], b[3]]),
                state: tabula::boot::LeaseState::Bound,
                expires_ms: 1_800_000_000_000 + i64::from(round),
            })
        })
        .collect()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = std::env::var("TABULA_BENCH_STORE")
        .unwrap_or_else(|_| format!("sqlite://{}", dir.path().join("bench.db").display()));
    let store = Store::open(&url).await.expect("open store");
    for (size, rounds) in [(1u32, 300u32), (64, 200), (512, 60)] {
        // One untimed round so the statements are prepared and the pages exist.
        store.write_leases(&batch(0, size)).await.expect("warm-up");
        let start = Instant::now();
        for r in 1..=rounds {
            store.write_leases(&batch(r, size)).await.expect("write");
        }
        let el = start.elapsed().as_secs_f64();
        println!(
            "write_leases, {size:>4} leases per commit  {rounds:>4} commits  {:>8.2} ms/commit  {:>9.0} leases/s",
            el * 1e3 / f64::from(rounds),
            f64::from(rounds * size) / el
        );
    }
    store.close().await;
}
