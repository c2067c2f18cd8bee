//! A TCP proxy between the app and a real PostgreSQL/Redis server, with
//! switches that cut or stall the network — the shared servers themselves
//! are never touched (other tests use them at the same time).
//!
//! - [`Proxy::cut`]: every live connection is closed at once and new ones
//!   are accepted and closed straight away (the server "died");
//! - [`Proxy::stall`]: nothing is forwarded either way, connections stay
//!   open, new ones are accepted and held (a dead network path, a frozen server);
//! - [`Proxy::restore`]: forwarding again (stalled connections resume).

#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    Up,
    Down,
    Stall,
}

#[derive(Clone, Copy, Debug)]
struct State {
    mode: Mode,
    /// How many times the network was cut: a connection dies when this moves.
    cuts: u64,
}

pub struct Proxy {
    addr: SocketAddr,
    state: watch::Sender<State>,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.send_modify(|s| {
            s.mode = Mode::Down;
            s.cuts += 1;
        });
        self.task.abort();
    }
}

impl Proxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (state, _) = watch::channel(State {
            mode: Mode::Up,
            cuts: 0,
        });
        let accepted = Arc::new(AtomicUsize::new(0));
        let (tx, count) = (state.clone(), Arc::clone(&accepted));
        let task = tokio::spawn(async move {
            loop {
                let Ok((sock, _)) = listener.accept().await else {
                    continue;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let rx = tx.subscribe();
                let now = *rx.borrow();
                if now.mode == Mode::Down {
                    drop(sock); // refused: closed before a byte is exchanged
                    continue;
                }
                tokio::spawn(serve(sock, upstream, rx, now.cuts));
            }
        });
        Self {
            addr,
            state,
            accepted,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Connections accepted so far (reconnect attempts show up here).
    pub fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// The server "dies": live connections closed, new ones refused.
    pub fn cut(&self) {
        self.state.send_modify(|s| {
            s.mode = Mode::Down;
            s.cuts += 1;
        });
    }

    /// A handle that cuts, for code that does not own the proxy.
    pub fn cutter(&self) -> impl Fn() + Send + Sync + 'static {
        let state = self.state.clone();
        move || {
            state.send_modify(|s| {
                s.mode = Mode::Down;
                s.cuts += 1;
            });
        }
    }

    /// The network path goes silent: nothing forwarded, nothing closed.
    pub fn stall(&self) {
        self.state.send_modify(|s| s.mode = Mode::Stall);
    }

    /// Forwarding again.
    pub fn restore(&self) {
        self.state.send_modify(|s| s.mode = Mode::Up);
    }
}

/// Waits until forwarding is allowed; false when the connection was cut meanwhile.
async fn until_up(rx: &mut watch::Receiver<State>, born: u64) -> bool {
    match rx.wait_for(|s| s.cuts != born || s.mode == Mode::Up).await {
        Ok(s) => s.cuts == born,
        Err(_) => false,
    }
}

async fn serve(client: TcpStream, upstream: SocketAddr, mut rx: watch::Receiver<State>, born: u64) {
    // A connection that arrives during a stall is held until it ends.
    if !until_up(&mut rx, born).await {
        return;
    }
    let Ok(server) = TcpStream::connect(upstream).await else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    let mut killed = rx.clone();
    tokio::select! {
        () = pump(cr, sw, rx.clone(), born) => {}
        () = pump(sr, cw, rx.clone(), born) => {}
        _ = killed.wait_for(|s| s.cuts != born) => {}
    }
    // Both sockets are dropped here: the peers see the connection close.
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut rx: watch::Receiver<State>,
    born: u64,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        // Read, then held while stalled: the sender's bytes vanish into the path.
        if !until_up(&mut rx, born).await {
            return;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

/// `url` with its host:port replaced by the proxy's, and the upstream address.
pub async fn through(url: &str, port: u16) -> (String, SocketAddr) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let at = rest.find('@').map_or(0, |i| i + 1);
    let end = rest[at..].find(['/', '?']).map_or(rest.len(), |i| at + i);
    let hostport = &rest[at..end];
    let upstream = tokio::net::lookup_host(hostport)
        .await
        .unwrap()
        .next()
        .unwrap();
    (
        format!("{scheme}://{}127.0.0.1:{port}{}", &rest[..at], &rest[end..]),
        upstream,
    )
}
