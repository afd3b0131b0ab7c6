//! The smallest HTTP/1.1 client a booting machine needs: `GET` (body kept, hashed or
//! counted) and `POST` of a small body, one request per connection, from a socket bound
//! to the machine's leased address. `Content-Length` bodies only (what tabula and nginx
//! send for files and short answers). Every read and write is under one deadline.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

/// An `http://host:port/path` URL, split.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Url {
    pub host: String,
    pub addr: SocketAddr,
    /// Path and query, starting with `/`.
    pub target: String,
}

impl Url {
    /// Parses an `http://` URL whose host is an IPv4 address.
    pub fn parse(s: &str) -> Result<Url, HttpFailure> {
        let bad = || HttpFailure::Url(s.to_string());
        let rest = s.strip_prefix("http://").ok_or_else(bad)?;
        let (host, target) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (ip, port) = match host.rsplit_once(':') {
            Some((ip, p)) => (ip, p.parse().map_err(|_| bad())?),
            None => (host, 80),
        };
        let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
        Ok(Url {
            host: host.to_string(),
            addr: SocketAddr::V4(SocketAddrV4::new(ip, port)),
            target: target.to_string(),
        })
    }
}

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpFailure {
    #[error("not an http://IPv4 URL: {0:?}")]
    Url(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("timed out")]
    Timeout,
    #[error("malformed response head")]
    Head,
    #[error("status {status}")]
    Status {
        status: u16,
        retry_after: Option<u64>,
    },
    #[error("body ended after {got} of {want} bytes")]
    Short { got: u64, want: u64 },
}

/// A response: its body (when kept) or just its length and sha256.
#[derive(Debug)]
pub struct Response {
    pub body: Vec<u8>,
    pub len: u64,
    pub sha256: String,
}

const MAX_HEAD: usize = 16 << 10;

/// `GET url` from `local`; a non-2xx status is an error. `keep` keeps the body.
pub async fn get(
    local: Ipv4Addr,
    url: &Url,
    keep: bool,
    deadline: Duration,
) -> Result<Response, HttpFailure> {
    let req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tabula-storm\r\nConnection: close\r\n\r\n",
        url.target, url.host
    );
    exchange(local, url, req.as_bytes(), keep, deadline).await
}

/// `POST url` with a JSON body.
pub async fn post(
    local: Ipv4Addr,
    url: &Url,
    json: &str,
    deadline: Duration,
) -> Result<Response, HttpFailure> {
    let req = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: tabula-storm\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
        url.target,
        url.host,
        json.len()
    );
    exchange(local, url, req.as_bytes(), true, deadline).await
}

async fn exchange(
    local: Ipv4Addr,
    url: &Url,
    req: &[u8],
    keep: bool,
    deadline: Duration,
) -> Result<Response, HttpFailure> {
    tokio::time::timeout(deadline, async {
        let sock = TcpSocket::new_v4()?;
        sock.bind(SocketAddr::V4(SocketAddrV4::new(local, 0)))?;
        let mut s = sock.connect(url.addr).await?;
        s.write_all(req).await?;
        let mut buf = vec![0u8; 256 << 10];
        let mut have = 0usize;
        let (status, length, retry_after, head_len) = loop {
            let n = s.read(&mut buf[have..MAX_HEAD.max(have + 1)]).await?;
            if n == 0 {
                return Err(HttpFailure::Head);
            }
            have += n;
            let mut headers = [httparse::EMPTY_HEADER; 32];
            let mut r = httparse::Response::new(&mut headers);
            match r.parse(&buf[..have]) {
                Ok(httparse::Status::Complete(h)) => {
                    let find = |name: &str| {
                        r.headers
                            .iter()
                            .find(|x| x.name.eq_ignore_ascii_case(name))
                            .and_then(|x| std::str::from_utf8(x.value).ok())
                            .and_then(|v| v.trim().parse::<u64>().ok())
                    };
                    break (
                        r.code.unwrap_or(0),
                        find("content-length"),
                        find("retry-after"),
                        h,
                    );
                }
                Ok(httparse::Status::Partial) if have < MAX_HEAD => continue,
                _ => return Err(HttpFailure::Head),
            }
        };
        if !(200..300).contains(&status) {
            return Err(HttpFailure::Status {
                status,
                retry_after,
            });
        }
        let mut hash = Sha256::new();
        let mut body = Vec::new();
        let mut take = |chunk: &[u8]| {
            hash.update(chunk);
            if keep {
                body.extend_from_slice(chunk);
            }
        };
        let mut got = (have - head_len) as u64;
        take(&buf[head_len..have]);
        let want = length.unwrap_or(u64::MAX);
        while got < want {
            let n = s.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            got += n as u64;
            take(&buf[..n]);
        }
        if length.is_some_and(|w| got != w) {
            return Err(HttpFailure::Short { got, want });
        }
        Ok(Response {
            body,
            len: got,
            sha256: hex::encode(hash.finalize()),
        })
    })
    .await
    .map_err(|_| HttpFailure::Timeout)?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_address_and_target() {
        let u = Url::parse("http://10.1.2.3:8080/boot/x/booted?t=1").unwrap();
        assert_eq!(u.addr, "10.1.2.3:8080".parse().unwrap());
        assert_eq!(
            (u.host.as_str(), u.target.as_str()),
            ("10.1.2.3:8080", "/boot/x/booted?t=1")
        );
        assert_eq!(Url::parse("http://10.0.0.1").unwrap().target, "/");
        assert!(Url::parse("https://10.0.0.1/").is_err());
        assert!(Url::parse("http://name.example/").is_err());
    }
}
