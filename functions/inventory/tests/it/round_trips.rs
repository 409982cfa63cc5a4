//! The number of database round trips per batch does not grow with the batch.
//!
//! Round trips are counted on the wire: the connection goes through a proxy that parses the
//! PostgreSQL frontend protocol and counts the messages after which the client waits for the
//! server (`Sync`, which ends an extended-query exchange, and `Query`, a simple query such as
//! `BEGIN`). Each is answered by exactly one `ReadyForQuery`, so the count is the number of
//! times the client waited for the database, whatever the driver does internally.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use shared::events::OrderEvent;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use testkit::postgres::{address_of, direct_pool};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::helpers::*;
use testkit::kafka::shared_publisher;

/// Forwards to PostgreSQL and counts the frontend's `Sync` and `Query` messages.
struct CountingProxy {
    port: u16,
    round_trips: Arc<AtomicUsize>,
}

impl CountingProxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let round_trips = Arc::new(AtomicUsize::new(0));
        let counter = round_trips.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&upstream).await.unwrap();
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut server_read, &mut client_write).await;
                });
                let counter = counter.clone();
                tokio::spawn(async move {
                    let mut parser = FrontendParser::default();
                    let mut buffer = vec![0; 64 * 1024];
                    loop {
                        let read = match client_read.read(&mut buffer).await {
                            Ok(0) | Err(_) => break,
                            Ok(read) => read,
                        };
                        counter.fetch_add(parser.feed(&buffer[..read]), Ordering::SeqCst);
                        if server_write.write_all(&buffer[..read]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        Self { port, round_trips }
    }

    fn take(&self) -> usize {
        self.round_trips.swap(0, Ordering::SeqCst)
    }
}

/// Splits the frontend byte stream into messages: untyped start-up packets (SSL request,
/// start-up message), then `type byte, int32 length, body`.
#[derive(Default)]
struct FrontendParser {
    pending: Vec<u8>,
    started: bool,
}

impl FrontendParser {
    const SSL_REQUEST: u32 = 80_877_103;

    /// Returns how many round-trip-ending messages the bytes completed.
    fn feed(&mut self, bytes: &[u8]) -> usize {
        self.pending.extend_from_slice(bytes);
        let mut waits = 0;
        loop {
            let header = if self.started { 5 } else { 8 };
            if self.pending.len() < header {
                return waits;
            }
            let at = usize::from(self.started);
            let length = u32::from_be_bytes(self.pending[at..at + 4].try_into().unwrap()) as usize;
            let total = at + length;
            if self.pending.len() < total {
                return waits;
            }
            if self.started {
                if matches!(self.pending[0], b'S' | b'Q') {
                    waits += 1;
                }
            } else {
                let code = u32::from_be_bytes(self.pending[4..8].try_into().unwrap());
                self.started = code != Self::SSL_REQUEST;
            }
            self.pending.drain(..total);
        }
    }
}

/// Waits until the pool has taken its connection back: sqlx checks a returned connection
/// in a background task, and that round trip belongs to the batch that returned it.
async fn settle(pool: &sqlx::PgPool) {
    testkit::eventually(
        "the pool taking its connections back",
        std::time::Duration::from_secs(10),
        || async {
            let (idle, size) = (pool.num_idle(), pool.size() as usize);
            if idle < size {
                Err(format!("{idle} of {size} connections idle"))
            } else {
                Ok(())
            }
        },
    )
    .await;
}

/// A batch of `n` orders: a third confirmed, a third out of stock, a third unknown products.
async fn mixed_batch(pool: &sqlx::PgPool, n: usize) -> Vec<OrderEvent> {
    let mut events = Vec::with_capacity(n);
    for i in 0..n {
        let product = ["Desk Lamp", "Sold Out", "No Such Thing"][i % 3];
        events.push(place_order(pool, product, 1).await);
    }
    events
}

#[sqlx::test(migrator = "testkit::MIGRATOR")]
async fn a_batch_of_1000_takes_as_many_round_trips_as_a_batch_of_10(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let direct = direct_pool(&connect, 2).await;
    let proxy = CountingProxy::start(address_of(&connect)).await;
    // One connection, without TLS so that the proxy can read the protocol.
    let counted = PgPoolOptions::new()
        .max_connections(1)
        .connect_with(connect.port(proxy.port).ssl_mode(PgSslMode::Disable))
        .await
        .unwrap();
    set_stock(&direct, &[("Desk Lamp", 100_000), ("Sold Out", 0)]).await;
    let inventory = inventory::consumer(counted, shared_publisher().await);

    // Warm up: the first batch on a connection also prepares the statements.
    let warm_up = mixed_batch(&direct, 3).await;
    inventory.handle(batch(&warm_up, 0, 0)).await.unwrap();
    let ten = mixed_batch(&direct, 10).await;
    let thousand = mixed_batch(&direct, 1_000).await;

    settle(inventory.pool()).await;
    proxy.take();
    let small = inventory.handle(batch(&ten, 0, 100)).await.unwrap();
    settle(inventory.pool()).await;
    let for_ten = proxy.take();
    let large = inventory.handle(batch(&thousand, 0, 200)).await.unwrap();
    settle(inventory.pool()).await;
    let for_thousand = proxy.take();

    assert_eq!((small.confirmed, small.rejected), (4, 6));
    assert_eq!((large.confirmed, large.rejected), (334, 666));
    assert_eq!(
        for_ten, for_thousand,
        "round trips do not depend on the batch size"
    );
    // BEGIN, claim, lock orders, lock stock, update stock, update orders, enqueue, COMMIT,
    // then mark published: 9 statements; plus the pool's liveness check on each checkout and
    // return (2 checkouts).
    assert_eq!(for_ten, 9 + 4, "round trips for a batch");
    eprintln!("round trips per batch: {for_ten} for 10 records, {for_thousand} for 1,000");
}
