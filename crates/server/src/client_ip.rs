//! Who a connection's client is, and how many connections each client address holds.
//!
//! A direct peer is its own client. A peer in `trusted_proxies` speaks for others: its
//! `X-Forwarded-For` header is read from the right, skipping trusted proxies, and the first
//! address that is not one is the client. Nobody else's header is believed.
//!
//! The per-address limit (off by default) counts direct TCP connections by their peer when they
//! are accepted, and WebSockets that arrive through a trusted proxy by their forwarded client
//! when they are upgraded. Each count is held by the connection's I/O, so it lasts as long as
//! the socket does, upgraded or not.

use axum::http::{HeaderMap, Request};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An address or a network (`10.0.0.0/8`, `::1`, `192.168.1.7`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNet {
    address: IpAddr,
    prefix: u8,
}

impl IpNet {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        match (self.address, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX.checked_shl(32 - self.prefix as u32).unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX.checked_shl(128 - self.prefix as u32).unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub struct BadIpNet;

impl FromStr for IpNet {
    type Err = BadIpNet;

    fn from_str(text: &str) -> Result<IpNet, BadIpNet> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text.trim(), None),
        };
        let address = canonical(address.parse::<IpAddr>().map_err(|_| BadIpNet)?);
        let width = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(prefix) => prefix.parse::<u8>().map_err(|_| BadIpNet)?,
            None => width,
        };
        if prefix > width {
            return Err(BadIpNet);
        }
        Ok(IpNet { address, prefix })
    }
}

/// IPv4 addresses seen through an IPv6 socket (`::ffff:1.2.3.4`) are IPv4 addresses.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

pub fn is_trusted(trusted: &[IpNet], ip: IpAddr) -> bool {
    trusted.iter().any(|net| net.contains(ip))
}

/// The client behind a request that came from `peer`.
pub fn client_of(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    if !is_trusted(trusted, peer) {
        return canonical(peer);
    }
    let mut client = canonical(peer);
    let hops = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.trim().parse::<IpAddr>() else {
            // An address we cannot read: stop believing the chain here.
            break;
        };
        client = canonical(ip);
        if !is_trusted(trusted, client) {
            break;
        }
    }
    client
}

/// Open connections per client address, up to `max` each.
#[derive(Debug)]
pub struct PerIpConnections {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One connection counted for its client; dropping it gives the place back.
#[derive(Debug)]
pub struct IpSlot {
    ip: IpAddr,
    counts: Arc<PerIpConnections>,
}

impl PerIpConnections {
    pub fn new(max: usize) -> Arc<PerIpConnections> {
        Arc::new(PerIpConnections {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Counts a connection for `ip`, or `None` when it already holds `max`.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let mut open = self.open.lock().expect("per-ip counts");
        let count = open.entry(ip).or_insert(0);
        if *count >= self.max {
            return None;
        }
        *count += 1;
        Some(IpSlot {
            ip,
            counts: self.clone(),
        })
    }

    pub fn open_for(&self, ip: IpAddr) -> usize {
        let open = self.open.lock().expect("per-ip counts");
        open.get(&ip).copied().unwrap_or(0)
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().expect("per-ip counts");
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// Where a connection from a trusted proxy keeps the count of the client it was upgraded for.
pub type SlotHolder = Arc<Mutex<Option<IpSlot>>>;

/// What every request learns about the connection it came on.
#[derive(Clone, Debug)]
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    /// Set for connections from trusted proxies while the per-address limit is on.
    pub forwarded_slot: Option<SlotHolder>,
}

/// A connection's I/O, carrying the counts that last as long as it does.
pub struct CountedStream<S> {
    stream: S,
    _direct: Option<IpSlot>,
    _forwarded: Option<SlotHolder>,
}

impl<S> CountedStream<S> {
    pub fn new(stream: S, direct: Option<IpSlot>, forwarded: Option<SlotHolder>) -> Self {
        CountedStream {
            stream,
            _direct: direct,
            _forwarded: forwarded,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for CountedStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for CountedStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The router, told about the connection each request came on.
#[derive(Clone)]
pub struct WithConnection {
    pub app: axum::Router,
    pub info: ConnectionInfo,
}

impl<B> tower_service::Service<Request<B>> for WithConnection
where
    axum::Router: tower_service::Service<Request<B>>,
{
    type Response = <axum::Router as tower_service::Service<Request<B>>>::Response;
    type Error = <axum::Router as tower_service::Service<Request<B>>>::Error;
    type Future = <axum::Router as tower_service::Service<Request<B>>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        tower_service::Service::<Request<B>>::poll_ready(&mut self.app, cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        request.extensions_mut().insert(self.info.clone());
        self.app.call(request)
    }
}

/// The per-address limit for WebSockets arriving through trusted proxies: an upgrade over the
/// limit is refused with 429 `TOO_MANY_CONNECTIONS`; one within it is counted for as long as
/// the proxy's connection (now the socket) lasts.
pub async fn limit_forwarded_sockets(
    axum::extract::State(limits): axum::extract::State<ForwardedLimits>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let info = request.extensions().get::<ConnectionInfo>().cloned();
    let upgrading = request
        .headers()
        .get(axum::http::header::UPGRADE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.eq_ignore_ascii_case("websocket"));
    if let (
        true,
        Some(ConnectionInfo {
            peer,
            forwarded_slot: Some(holder),
        }),
    ) = (upgrading, info)
    {
        let client = client_of(peer.ip(), request.headers(), &limits.trusted);
        match limits.counts.acquire(client) {
            Some(slot) => *holder.lock().expect("forwarded slot") = Some(slot),
            None => return too_many_connections(),
        }
    }
    next.run(request).await
}

#[derive(Clone)]
pub struct ForwardedLimits {
    pub counts: Arc<PerIpConnections>,
    pub trusted: Arc<[IpNet]>,
}

pub const TOO_MANY_BODY: &str = r#"{"error":{"code":"TOO_MANY_CONNECTIONS","message":"this address holds as many connections as it may; close one or retry later"}}"#;

fn too_many_connections() -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::TOO_MANY_REQUESTS,
        [
            (axum::http::header::RETRY_AFTER, "5"),
            (axum::http::header::CONTENT_TYPE, "application/json"),
        ],
        TOO_MANY_BODY,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|text| text.parse().unwrap()).collect()
    }

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn networks_parse_and_match() {
        let net: IpNet = "10.0.0.0/8".parse().unwrap();
        assert!(net.contains("10.200.3.4".parse().unwrap()));
        assert!(!net.contains("11.0.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.0.0.1".parse().unwrap()));
        let one: IpNet = "::1".parse().unwrap();
        assert!(one.contains("::1".parse().unwrap()));
        assert!(!one.contains("::2".parse().unwrap()));
        assert!("0.0.0.0/0"
            .parse::<IpNet>()
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        for bad in ["", "nope", "10.0.0.0/33", "::1/129", "1.2.3.4/x"] {
            assert_eq!(bad.parse::<IpNet>(), Err(BadIpNet), "{bad}");
        }
    }

    #[test]
    fn only_trusted_proxies_are_believed() {
        let trusted = nets(&["127.0.0.1", "10.0.0.0/8"]);
        let stranger: IpAddr = "203.0.113.9".parse().unwrap();
        // A stranger's header is ignored.
        assert_eq!(
            client_of(stranger, &forwarded("1.1.1.1"), &trusted),
            stranger
        );
        // Through a proxy: the nearest untrusted hop, whatever the client claimed before it.
        let proxy: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            client_of(
                proxy,
                &forwarded("6.6.6.6, 198.51.100.7, 10.1.1.1"),
                &trusted
            ),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // No header: the proxy itself.
        assert_eq!(client_of(proxy, &HeaderMap::new(), &trusted), proxy);
        // Garbage ends the chain at the last readable hop.
        assert_eq!(
            client_of(proxy, &forwarded("nonsense, 10.2.2.2"), &trusted),
            "10.2.2.2".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn slots_are_counted_and_given_back() {
        let counts = PerIpConnections::new(2);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let first = counts.acquire(ip).unwrap();
        let _second = counts.acquire(ip).unwrap();
        assert!(counts.acquire(ip).is_none());
        assert!(counts.acquire("192.0.2.2".parse().unwrap()).is_some());
        drop(first);
        assert_eq!(counts.open_for(ip), 1);
        assert!(counts.acquire(ip).is_some());
    }
}
