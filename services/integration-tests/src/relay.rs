//! A TCP relay that can turn into a black hole, for partition tests: it forwards bytes both
//! ways until [`Relay::cut`], then holds every connection open and forwards nothing, new
//! connections included, as a network partition does (packets dropped, nothing refused, no
//! FIN or RST getting through). [`Relay::heal`] forwards what waited, as TCP retransmission
//! would once the path is back.

use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Relay {
    pub addr: SocketAddr,
    cut: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl Relay {
    /// Listens on a free loopback port and forwards each connection to `target`.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind the relay");
        let addr = listener.local_addr().unwrap();
        let (cut, watching) = watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(relay(client, target, watching.clone()));
            }
        });
        Self { addr, cut, task }
    }

    /// From now on nothing passes, either way, on any connection.
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    pub fn heal(&self) {
        self.cut.send_replace(false);
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Waits while the path is cut.
async fn passable(cut: &mut watch::Receiver<bool>) -> bool {
    cut.wait_for(|cut| !cut).await.is_ok()
}

async fn relay(client: TcpStream, target: SocketAddr, mut cut: watch::Receiver<bool>) {
    // A connection made during a cut is accepted (the kernel answers the handshake) but
    // reaches nothing until the path is back.
    if !passable(&mut cut).await {
        return;
    }
    let Ok(server) = TcpStream::connect(target).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    tokio::join!(
        pipe(client_read, server_write, cut.clone()),
        pipe(server_read, client_write, cut)
    );
}

/// Copies one direction, holding bytes (and the end of the stream) while the path is cut.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, mut cut: watch::Receiver<bool>) {
    let mut buffer = vec![0; 16 * 1024];
    loop {
        if !passable(&mut cut).await {
            return;
        }
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Cut between the read and the write: the bytes wait with the rest.
        if !passable(&mut cut).await || to.write_all(&buffer[..n]).await.is_err() {
            return;
        }
    }
    if passable(&mut cut).await {
        let _ = to.shutdown().await;
    }
}
