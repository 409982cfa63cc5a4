//! Records per second through the inventory handler (decode, one transaction, publish) on
//! MSK batches of 1,000 and 10,000 `order.placed` records against a real database with 50
//! products, next to pgbench doing the same per-order work (UPDATE stock, UPDATE order,
//! INSERT processed event) as one transaction per record with 1 client, then the ratio;
//! and the handler's peak memory on a 10,000-record batch.
//!
//! ```text
//! cargo run --release -p bench --bin inventory_batch
//! ```
//!
//! Settings: `BENCH_REPEAT` (3 runs per batch size, the median is reported),
//! `BENCH_PGBENCH_RECORDS` (10000), `DATABASE_URL` (the server to use; a scratch database is
//! created on it and dropped afterwards), `BENCH_KAFKA_BOOTSTRAP` (default: a private broker
//! started for the run, so the shared topics stay clean).
//!
//! Memory is measured in a child process (this binary with `--memory-probe`), so that the
//! earlier runs do not raise its high-water marks: the heap peak comes from a counting global
//! allocator, the resident-set peak from `VmHWM` in `/proc/self/status`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use aws_lambda_events::event::kafka::KafkaEvent;
use bench::pgbench::parse_summary;
use bench::scratch::{self, ScratchDatabase};
use bench::settings::{env, env_number};
use bench::stats::median;
use bench::workload::{Broker, PRODUCTS, placed_batch, publisher, stock_products};
use inventory::Inventory;
use shared::consumer::Consumer;
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;

/// Counts heap bytes in use and their high-water mark, for the memory probe.
struct CountingAllocator;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            let now = IN_USE.fetch_add(layout.size(), Ordering::Relaxed) + layout.size();
            PEAK.fetch_max(now, Ordering::Relaxed);
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        IN_USE.fetch_sub(layout.size(), Ordering::Relaxed);
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

const BATCH_SIZES: [usize; 2] = [1_000, 10_000];
const MEMORY_PROBE: &str = "--memory-probe";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    if args.next().as_deref() == Some(MEMORY_PROBE) {
        let url = args
            .next()
            .context("--memory-probe <database url> <bootstrap>")?;
        let bootstrap = args
            .next()
            .context("--memory-probe <database url> <bootstrap>")?;
        return memory_probe(&url, &bootstrap).await;
    }
    scratch::with_database("bench_inventory", async |database| run(database).await).await
}

async fn run(database: &ScratchDatabase) -> anyhow::Result<()> {
    let repeat: usize = env_number("BENCH_REPEAT", 3)?;
    let pgbench_records: usize = env_number("BENCH_PGBENCH_RECORDS", 10_000)?;
    let broker = Broker::for_run().await;
    let bootstrap = &broker.bootstrap;
    stock_products(&database.pool, 1_000_000).await?;
    let pool = handler_pool(&database.url).await?;
    let inventory = inventory::consumer(pool.clone(), publisher(bootstrap).await?);

    println!(
        "inventory: real handler on MSK batches, {PRODUCTS} products, broker {bootstrap}, median of {} runs",
        repeat.max(1)
    );
    // Warm up the pool, the prepared statements and the producer.
    run_batch(&inventory, &pool, 100).await?;
    let mut handler_rates = Vec::new();
    for size in BATCH_SIZES {
        let mut rates = Vec::new();
        for _ in 0..repeat.max(1) {
            let elapsed = run_batch(&inventory, &pool, size).await?;
            rates.push(size as f64 / elapsed.as_secs_f64());
        }
        let runs = rates
            .iter()
            .map(|rate| format!("{rate:.0}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rate = median(&mut rates);
        println!("  handler, batch of {size:>6}   {rate:>8.0} records/s   (runs: {runs})");
        handler_rates.push((size, rate));
    }

    let pgbench_rate = pgbench(&database.pool, &database.url, pgbench_records).await?;
    println!(
        "  pgbench, 1 client, 1 tx/record  {pgbench_rate:>8.0} records/s   ({pgbench_records} records: UPDATE stock, UPDATE order, INSERT processed event)"
    );
    for (size, rate) in &handler_rates {
        println!(
            "  ratio, batch of {size:>6}        {:>7.1}x   (target >= 10x)",
            rate / pgbench_rate
        );
    }

    let probe = Command::new(std::env::current_exe()?)
        .arg(MEMORY_PROBE)
        .arg(&database.url)
        .arg(bootstrap)
        .output()
        .context("the memory probe runs")?;
    ensure!(
        probe.status.success(),
        "the memory probe failed: {}",
        String::from_utf8_lossy(&probe.stderr)
    );
    print!("{}", String::from_utf8_lossy(&probe.stdout));
    pool.close().await;
    Ok(())
}

/// Inserts `size` PLACED orders, then times the handler on their `order.placed` batch.
async fn run_batch(
    inventory: &Consumer<Inventory>,
    pool: &PgPool,
    size: usize,
) -> anyhow::Result<Duration> {
    let event = placed_batch(pool, size, false).await?;
    let started = Instant::now();
    let summary = inventory.handle(event).await?;
    let elapsed = started.elapsed();
    ensure!(
        summary.confirmed == size && summary.published == size,
        "unexpected summary {summary:?}"
    );
    Ok(elapsed)
}

/// Runs pgbench with 1 client: per record, one transaction with the same three writes.
async fn pgbench(pool: &PgPool, bench_url: &str, records: usize) -> anyhow::Result<f64> {
    // Orders with ids derived from a counter, so each pgbench transaction finds its own.
    sqlx::query(
        "INSERT INTO orders (id, customer_name, customer_email, product_name, quantity, status)
         SELECT ('00000000-0000-7000-8000-' || lpad(to_hex(n), 12, '0'))::uuid,
                'Customer ' || n, 'customer' || n || '@example.com',
                'bench-product-' || lpad((n % 50)::text, 2, '0'), 1, 'PLACED'
         FROM generate_series(1, $1::int) AS n",
    )
    .bind(records as i32)
    .execute(pool)
    .await?;
    let script = std::env::temp_dir().join(format!("inventory-pgbench-{}.sql", std::process::id()));
    std::fs::write(
        &script,
        r"\set n :n + 1
\set p :n % 50
BEGIN;
UPDATE stock SET quantity = quantity - 1, updated_at = now() WHERE product_name = 'bench-product-' || lpad(:p::text, 2, '0');
UPDATE orders SET status = 'CONFIRMED', updated_at = now() WHERE id = ('00000000-0000-7000-8000-' || lpad(to_hex(:n::bigint), 12, '0'))::uuid AND status = 'PLACED';
INSERT INTO processed_events (consumer, event_id) VALUES ('pgbench', ('00000000-0000-7000-9000-' || lpad(to_hex(:n::bigint), 12, '0'))::uuid) ON CONFLICT DO NOTHING;
END;
",
    )?;
    // Counted transactions (-t) with a per-client counter (-D), which `bench::pgbench::PgBench`
    // (timed runs, random keys) does not offer: each transaction confirms its own order.
    let output = Command::new(env("PGBENCH", "pgbench"))
        .args(["-n", "-c", "1", "-M", "prepared", "-D", "n=0", "-t"])
        .arg(records.to_string())
        .arg("-f")
        .arg(&script)
        .arg(bench_url)
        .output()
        .context("pgbench runs (install postgresql-client)")?;
    let _ = std::fs::remove_file(&script);
    let stdout = String::from_utf8_lossy(&output.stdout);
    ensure!(
        output.status.success(),
        "pgbench failed: {}{}",
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    // Every transaction did its work: each confirmed exactly one distinct order.
    let confirmed: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM orders WHERE id::text LIKE '00000000-0000-7000-8000-%' AND status = 'CONFIRMED'",
    )
    .fetch_one(pool)
    .await?;
    ensure!(
        confirmed == records as i64,
        "pgbench confirmed {confirmed} orders, expected {records}"
    );
    Ok(parse_summary(&stdout)?.tps)
}

/// The child process: the peak memory of one 10,000-record invocation, from the raw JSON
/// payload (as the runtime receives it) to the published summary.
async fn memory_probe(bench_url: &str, bootstrap: &str) -> anyhow::Result<()> {
    const SIZE: usize = 10_000;
    let pool = handler_pool(bench_url).await?;
    let inventory = inventory::consumer(pool.clone(), publisher(bootstrap).await?);
    run_batch(&inventory, &pool, 100).await?;
    let payload = serde_json::to_vec(&placed_batch(&pool, SIZE, false).await?)?;

    let hwm_before = vm_hwm_kib()?;
    let heap_before = IN_USE.load(Ordering::Relaxed);
    PEAK.store(heap_before, Ordering::Relaxed);
    let event: KafkaEvent = serde_json::from_slice(&payload)?;
    let summary = inventory.handle(event).await?;
    let heap_peak = PEAK.load(Ordering::Relaxed) - heap_before;
    let hwm_after = vm_hwm_kib()?;
    ensure!(summary.confirmed == SIZE, "unexpected summary {summary:?}");

    println!(
        "  memory, batch of {SIZE:>6}   heap peak {:.1} MiB above the {:.1} MiB held before (payload {:.1} MiB of JSON); RSS high-water mark {:.1} MiB (was {:.1} MiB before the invocation)",
        heap_peak as f64 / 1_048_576.0,
        heap_before as f64 / 1_048_576.0,
        payload.len() as f64 / 1_048_576.0,
        hwm_after as f64 / 1024.0,
        hwm_before as f64 / 1024.0,
    );
    Ok(())
}

/// `VmHWM` of this process, in KiB.
fn vm_hwm_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmHWM in /proc/self/status")
}

/// A pool as the function builds it: two connections, one used per invocation.
async fn handler_pool(url: &str) -> anyhow::Result<PgPool> {
    Ok(PgPoolOptions::new().max_connections(2).connect(url).await?)
}
