//! A TCP proxy to stand between code and a real service, so a test can cut the line
//! (a database or SMTP outage) without stopping the service other tests share; and a
//! [`black_hole`] that accepts connections and never answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;

struct State {
    upstream: String,
    open: AtomicBool,
    connections: Mutex<Vec<JoinHandle<()>>>,
}

/// Forwards 127.0.0.1:`port()` to the upstream address while open.
pub struct TcpProxy {
    port: u16,
    state: Arc<State>,
    acceptor: JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(upstream: impl Into<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("the proxy can listen on loopback");
        let port = listener.local_addr().expect("bound").port();
        let state = Arc::new(State {
            upstream: upstream.into(),
            open: AtomicBool::new(true),
            connections: Mutex::new(Vec::new()),
        });
        let acceptor = tokio::spawn(accept(listener, state.clone()));
        Self {
            port,
            state,
            acceptor,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Drops every live connection and closes new ones at once, as a dead peer would.
    pub async fn cut(&self) {
        self.state.open.store(false, Ordering::SeqCst);
        for connection in self.state.connections.lock().await.drain(..) {
            connection.abort();
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.state.open.store(true, Ordering::SeqCst);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        if let Ok(mut connections) = self.state.connections.try_lock() {
            connections.drain(..).for_each(|c| c.abort());
        }
    }
}

async fn accept(listener: TcpListener, state: Arc<State>) {
    while let Ok((mut client, _)) = listener.accept().await {
        if !state.open.load(Ordering::SeqCst) {
            drop(client);
            continue;
        }
        let upstream = state.upstream.clone();
        let connection = tokio::spawn(async move {
            if let Ok(mut server) = TcpStream::connect(&upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
            }
        });
        let mut connections = state.connections.lock().await;
        connections.retain(|c| !c.is_finished());
        connections.push(connection);
    }
}

/// A TCP server on a free port that accepts connections and never says a word, as a hung
/// database or a black-holed relay; returns its port. It runs until the runtime ends.
pub async fn black_hole() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("loopback has free ports");
    let port = listener.local_addr().expect("a bound address").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    port
}
