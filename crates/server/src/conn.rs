//! The HTTP listener: every connection's limits (issue 15, finding 2).
//!
//! axum's `serve` sets no header-read timeout and no cap on connections: 500 idle sockets, 200
//! half-sent headers and 100 slowloris sockets all stayed open, and with a 256 open-file limit
//! 300 idle sockets made `accept` fail (`Too many open files`) so a signed Twilio webhook went
//! unanswered. This loop serves the same router with hyper-util, and:
//! - a request's headers must arrive within [`ConnLimits::header_read_timeout`] of the moment the
//!   server starts waiting for them — on a new connection and between keep-alive requests — or
//!   the connection is closed (idle and slowloris sockets);
//! - connections are capped in total ([`ConnLimits::max_connections`], below the open-file limit,
//!   which is raised to its hard limit at start) and per client address
//!   ([`ConnLimits::max_per_address`]); at a cap, the oldest connection that has not yet sent a
//!   request makes room (closed), so a flood of idle sockets can never keep a real webhook or
//!   stream out; only when every connection is busy with a request is the new one refused;
//! - an `accept` error (the open-file limit) is logged once a second and retried after a pause,
//!   never a hot loop.
//!
//! WebSocket upgrades (media streams, live feeds) leave hyper once upgraded; their own deadlines
//! apply (a stream's `start`, a feed's sign-in).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Limits on the listener's connections.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConnLimits {
    /// Most connections open at once (default: the open-file limit less 256, at most 8 192).
    pub max_connections: usize,
    /// Most connections open at once from one client address (default 512; behind a trusted
    /// proxy every client shares its address, and only the total applies).
    pub max_per_address: usize,
    /// How long a request's headers may take to arrive, from the moment the server waits for
    /// them (default 10 s).
    pub header_read_timeout: Duration,
}

/// File descriptors kept free below the open-file limit: the store, recording files, model
/// sockets and Twilio REST connections need them too.
pub const FD_RESERVE: u64 = 256;

impl ConnLimits {
    /// The defaults for this process's open-file limit (see [`raise_nofile`]).
    pub fn for_nofile(nofile: u64) -> ConnLimits {
        ConnLimits {
            max_connections: nofile.saturating_sub(FD_RESERVE).clamp(16, 8192) as usize,
            max_per_address: 512,
            header_read_timeout: Duration::from_secs(10),
        }
    }
}

/// Raises this process's soft open-file limit (`RLIMIT_NOFILE`) to its hard limit; returns
/// the soft limit now in force (the old one if it could not be raised, with a warning — macOS
/// refuses an unlimited soft limit). Through rustix, already in the tree (the desktop app
/// carries no crate for this alone).
#[cfg(unix)]
pub fn raise_nofile() -> u64 {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    // `None` is RLIM_INFINITY.
    let now = getrlimit(Resource::Nofile);
    let soft = now.current.unwrap_or(u64::MAX);
    if now.current == now.maximum {
        return soft;
    }
    match setrlimit(Resource::Nofile, Rlimit { current: now.maximum, maximum: now.maximum }) {
        Ok(()) => now.maximum.unwrap_or(u64::MAX),
        Err(e) => {
            tracing::warn!(error = %e, soft, "could not raise the open-file limit");
            soft
        }
    }
}

/// No per-process open-file limit to raise here: the connection cap's own ceiling applies.
#[cfg(not(unix))]
pub fn raise_nofile() -> u64 {
    8192 + FD_RESERVE
}

/// One open connection.
struct Conn {
    peer: IpAddr,
    opened: Instant,
    /// A request is being answered on it.
    busy: Arc<AtomicBool>,
    close: CancellationToken,
}

/// The open connections, for the caps.
#[derive(Default)]
struct Table {
    next_id: u64,
    conns: HashMap<u64, Conn>,
    per_address: HashMap<IpAddr, usize>,
}

/// How a new connection was let in.
#[derive(Debug, PartialEq, Eq)]
enum Admission {
    /// Room for it.
    Room,
    /// An idle connection was closed to make room.
    Evicted,
    /// Every connection that counts against the cap is busy: refused.
    Full,
}

impl Table {
    /// Makes room for a connection from `peer` under `limits`, closing the oldest connection that
    /// has sent no request (of the same address when that address is at its cap).
    fn admit(&mut self, peer: IpAddr, limits: &ConnLimits) -> Admission {
        let mut evicted = false;
        for scope in [Some(peer), None] {
            // Each cap is looked at after the room the one before made.
            let full = match scope {
                Some(p) => self.per_address.get(&p).copied().unwrap_or(0) >= limits.max_per_address,
                None => self.conns.len() >= limits.max_connections,
            };
            if !full {
                continue;
            }
            let oldest_idle = self.conns.iter().filter(|(_, c)| !c.busy.load(Ordering::Relaxed) && scope.is_none_or(|p| c.peer == p)).min_by_key(|(_, c)| c.opened).map(|(id, _)| *id);
            match oldest_idle {
                Some(id) => {
                    self.remove(id).close.cancel();
                    evicted = true;
                }
                None => return Admission::Full,
            }
        }
        if evicted { Admission::Evicted } else { Admission::Room }
    }

    fn insert(&mut self, conn: Conn) -> u64 {
        self.next_id += 1;
        *self.per_address.entry(conn.peer).or_default() += 1;
        self.conns.insert(self.next_id, conn);
        self.next_id
    }

    fn remove(&mut self, id: u64) -> Conn {
        // Invariant: ids come from `insert` and are removed once (here or by `forget`).
        let c = self.conns.remove(&id).expect("a live connection id");
        if let Some(n) = self.per_address.get_mut(&c.peer) {
            *n -= 1;
            if *n == 0 {
                self.per_address.remove(&c.peer);
            }
        }
        c
    }

    fn forget(&mut self, id: u64) {
        if self.conns.contains_key(&id) {
            self.remove(id);
        }
    }
}

/// Serves `app` on `listener` until `shutdown`, with the [`ConnLimits`]; then stops accepting,
/// and each open connection finishes its request in progress (up to 5 s) and closes.
pub async fn serve(listener: TcpListener, app: Router, limits: ConnLimits, tls: Option<std::sync::Arc<crate::tls::Tls>>, shutdown: CancellationToken) {
    let table = Arc::new(Mutex::new(Table::default()));
    // HTTP/1.1 only (Twilio and the console speak it; WebSockets upgrade from it): hyper-util's
    // auto-detecting builder waits for a first byte before any timeout runs.
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let mut last_error_log: Option<Instant> = None;
    loop {
        let (tcp, peer) = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(a) => a,
                Err(e) => {
                    if last_error_log.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                        tracing::error!(error = %e, "accept failed (open-file limit?): retrying");
                        last_error_log = Some(Instant::now());
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // Media frames are small and latency-bound: no Nagle delay (40 ms with delayed ACKs).
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY on a connection");
        }
        let busy = Arc::new(AtomicBool::new(false));
        let close = CancellationToken::new();
        let id = {
            let mut t = table.lock();
            match t.admit(peer.ip(), &limits) {
                Admission::Full => {
                    tracing::warn!(%peer, open = t.conns.len(), "connection refused: every connection is busy at the cap");
                    continue; // dropped: closed
                }
                Admission::Evicted => tracing::debug!(%peer, "an idle connection was closed to make room"),
                Admission::Room => {}
            }
            t.insert(Conn { peer: peer.ip(), opened: Instant::now(), busy: busy.clone(), close: close.clone() })
        };
        let app = app.clone();
        let svc = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
            // Busy while a request is being answered; a keep-alive connection waiting for its
            // next request can make room again.
            busy.store(true, Ordering::Relaxed);
            req.extensions_mut().insert(ConnectInfo(peer));
            let (answer, busy) = (app.clone().oneshot(req), busy.clone());
            async move {
                let r = answer.await;
                busy.store(false, Ordering::Relaxed);
                r
            }
        });
        let (table, shutdown, http) = (table.clone(), shutdown.clone(), http.clone());
        let acceptor = tls.as_ref().map(|t| t.acceptor());
        let handshake_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            match acceptor {
                None => drive(http.serve_connection(TokioIo::new(tcp), svc).with_upgrades(), peer, &close, &shutdown).await,
                Some(acceptor) => {
                    // The handshake is bounded like a request's headers: a socket that never
                    // finishes it is closed like an idle one.
                    let handshake = tokio::select! {
                        r = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)) => r,
                        _ = close.cancelled() => { table.lock().forget(id); return; }
                    };
                    match handshake {
                        Ok(Ok(stream)) => drive(http.serve_connection(TokioIo::new(stream), svc).with_upgrades(), peer, &close, &shutdown).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
            table.lock().forget(id);
        });
    }
}

/// Serves one connection until it ends, the listener closes it to make room (`close`), or the
/// server shuts down (the request in progress finishes first, for at most 5 s).
async fn drive<C>(conn: C, peer: std::net::SocketAddr, close: &CancellationToken, shutdown: &CancellationToken)
where
    C: std::future::Future<Output = Result<(), hyper::Error>> + GracefulConn,
{
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => if let Err(e) = r {
            tracing::debug!(%peer, error = %e, "connection ended with an error");
        },
        _ = close.cancelled() => {}
        _ = shutdown.cancelled() => {
            conn.as_mut().start_graceful_shutdown();
            let _ = tokio::time::timeout(Duration::from_secs(5), conn).await;
        }
    }
}

/// hyper's upgradeable HTTP/1 connection over any transport (plain TCP or TLS): its graceful
/// shutdown, named so [`drive`] serves both.
trait GracefulConn {
    fn start_graceful_shutdown(self: std::pin::Pin<&mut Self>);
}

impl<I, S> GracefulConn for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming>,
    S::ResBody: hyper::body::Body + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn start_graceful_shutdown(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(t: &mut Table, peer: [u8; 4], busy: bool) -> (u64, CancellationToken) {
        let close = CancellationToken::new();
        let id = t.insert(Conn { peer: IpAddr::from(peer), opened: Instant::now(), busy: Arc::new(AtomicBool::new(busy)), close: close.clone() });
        (id, close)
    }

    #[test]
    fn at_a_cap_the_oldest_idle_connection_makes_room() {
        let limits = ConnLimits { max_connections: 3, max_per_address: 2, header_read_timeout: Duration::from_secs(10) };
        let mut t = Table::default();
        let (_, idle_a) = conn(&mut t, [10, 0, 0, 1], false);
        let (_, busy_a) = conn(&mut t, [10, 0, 0, 1], true);
        // 10.0.0.1 is at its cap of 2: its idle connection goes, not its busy one.
        assert_eq!(t.admit(IpAddr::from([10, 0, 0, 1]), &limits), Admission::Evicted);
        assert!(idle_a.is_cancelled() && !busy_a.is_cancelled());
        conn(&mut t, [10, 0, 0, 1], true);
        // Now both of its connections are busy: a third is refused.
        assert_eq!(t.admit(IpAddr::from([10, 0, 0, 1]), &limits), Admission::Full);
        // Another address has room until the total cap.
        assert_eq!(t.admit(IpAddr::from([10, 0, 0, 2]), &limits), Admission::Room);
        let (_, idle_b) = conn(&mut t, [10, 0, 0, 2], false);
        assert_eq!(t.conns.len(), 3);
        // At the total cap the oldest idle connection of any address goes.
        assert_eq!(t.admit(IpAddr::from([10, 0, 0, 3]), &limits), Admission::Evicted);
        assert!(idle_b.is_cancelled());
        assert_eq!(t.conns.len(), 2);
        assert_eq!(t.per_address.get(&IpAddr::from([10, 0, 0, 2])), None);
    }
}
