//! Where the URLs the service hands out point, when it builds them from a request (the content
//! route of a store without URLs of its own): from `http.public_url` when set; otherwise from
//! the request's `Host`, but only a host the operator listed, and from `X-Forwarded-*` only
//! when a listed proxy sent them. A forged `Host` or `X-Forwarded-Proto` would otherwise put
//! an attacker's address, or a `javascript:` scheme, into a link a client follows.

use std::net::IpAddr;

use poem::Request;

use crate::envelope::ApiError;

/// Which request headers may name the service's own address.
#[derive(Debug, Clone, Default)]
pub struct HostPolicy {
    /// The service's public URL; when set, requests name nothing.
    pub public_url: Option<String>,
    /// Hosts a `Host` (or trusted `X-Forwarded-Host`) may name, compared without the port
    /// and case-insensitively (`[::1]` for an IPv6 address).
    pub allowed_hosts: Vec<String>,
    /// Peers whose `X-Forwarded-Proto` and `X-Forwarded-Host` are believed.
    pub trusted_proxies: Vec<IpAddr>,
    /// Whether answers carry URLs built from the request at all (a blob store with no URLs
    /// of its own); when not, no request is checked.
    pub urls_from_requests: bool,
}

impl HostPolicy {
    /// The base (`scheme://host`) of URLs built for this request, or the 400 that refuses a
    /// host nobody listed. Checked before the request does anything, so a refused request
    /// keeps nothing.
    pub(crate) fn base(&self, req: &Request) -> Result<Option<String>, ApiError> {
        if !self.urls_from_requests {
            return Ok(None);
        }
        if let Some(url) = &self.public_url {
            return Ok(Some(url.trim_end_matches('/').to_owned()));
        }
        let trusted = req
            .remote_addr()
            .as_socket_addr()
            .is_some_and(|peer| self.trusted_proxies.contains(&peer.ip()));
        let forwarded = |name: &str| {
            trusted
                .then(|| req.header(name))
                .flatten()
                .map(|v| v.split(',').next().unwrap_or_default().trim().to_owned())
        };
        let host = forwarded("x-forwarded-host")
            .or_else(|| req.header(poem::http::header::HOST).map(str::to_owned))
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_default();
        if !self.allows(&host) {
            return Err(ApiError::bad_request(format!(
                "Host: `{}` is not a name of this service (http.allowed_hosts); set \
                 http.public_url, or list the host",
                host.chars().take(100).collect::<String>()
            )));
        }
        let scheme = match forwarded("x-forwarded-proto") {
            Some(proto) if proto.eq_ignore_ascii_case("https") => "https",
            Some(proto) if proto.eq_ignore_ascii_case("http") => "http",
            Some(proto) => {
                return Err(ApiError::bad_request(format!(
                    "X-Forwarded-Proto: `{}` is neither http nor https",
                    proto.chars().take(40).collect::<String>()
                )));
            }
            None => "http",
        };
        Ok(Some(format!("{scheme}://{host}")))
    }

    /// Whether `host` (with or without a port) is listed; nothing but a plain host name or
    /// address with an optional port passes.
    fn allows(&self, host: &str) -> bool {
        let Some(name) = host_name(host) else {
            return false;
        };
        self.allowed_hosts
            .iter()
            .any(|allowed| allowed.trim().eq_ignore_ascii_case(name))
    }
}

/// The name part of a `host[:port]`, or `None` when it is not one.
fn host_name(host: &str) -> Option<&str> {
    let (name, rest) = if host.starts_with('[') {
        let end = host.find(']')?;
        (&host[..=end], &host[end + 1..])
    } else {
        match host.find(':') {
            Some(i) => (&host[..i], &host[i..]),
            None => (host, ""),
        }
    };
    let port_ok = rest.is_empty()
        || rest
            .strip_prefix(':')
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b));
    (port_ok && name_ok).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> HostPolicy {
        HostPolicy {
            public_url: None,
            allowed_hosts: vec!["localhost".into(), "127.0.0.1".into(), "[::1]".into()],
            trusted_proxies: Vec::new(),
            urls_from_requests: true,
        }
    }

    #[test]
    fn listed_hosts_pass_with_or_without_a_port() {
        let p = policy();
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "127.0.0.1:1",
            "[::1]",
            "[::1]:443",
        ] {
            assert!(p.allows(host), "{host}");
        }
        for host in [
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "localhost:80@evil",
            "",
            "localhost:",
            "[::1",
            "javascript:alert(1)//",
        ] {
            assert!(!p.allows(host), "{host}");
        }
    }
}
