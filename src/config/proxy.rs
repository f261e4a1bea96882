//! `[client] proxy`: the HTTP proxy this node reaches its peers through.
//!
//! Only `http://host:port` is accepted: the node opens a plain TCP connection
//! to the proxy and asks it for a tunnel with `CONNECT host:port`; the TLS
//! session with the peer (mutual authentication included) runs inside the
//! tunnel, end to end, so the proxy sees the peer's host and port and nothing
//! else. TLS to the proxy itself (`https://` proxies) is not supported.
//!
//! Credentials for Basic proxy authentication may be given as userinfo,
//! `http://user:password@host:port` (percent-encoded where needed). They are
//! kept apart from everything that is displayed or logged: [`ProxySettings`]
//! shows itself as `http://host:port`, and its `Debug` redacts them.

use std::fmt;

use zeroize::Zeroizing;

/// A validated `[client] proxy` setting.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxySettings {
    host: String,
    port: u16,
    credentials: Option<ProxyCredentials>,
}

/// Basic proxy-authentication credentials. Never displayed or logged; the
/// password is wiped from memory when dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyCredentials {
    user: String,
    password: Zeroizing<String>,
}

impl ProxySettings {
    /// Parses `http://[user:password@]host:port` (see the module doc). The
    /// error says what is wrong in words.
    pub fn parse(s: &str) -> Result<Self, String> {
        let uri: http::Uri = s
            .parse()
            .map_err(|_| format!("{:?} is not a URL", redacted(s)))?;
        match uri.scheme_str() {
            Some("http") => {}
            Some("https") => {
                return Err(
                    "https:// proxies (TLS to the proxy) are not supported; give the proxy as http://host:port — the connection to the peer is TLS inside the tunnel either way"
                        .to_owned(),
                )
            }
            _ => return Err(format!("{:?} must be http://host:port", redacted(s))),
        }
        let authority = uri
            .authority()
            .ok_or_else(|| format!("{:?} must be http://host:port", redacted(s)))?;
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(format!(
                "{:?} must be http://host:port, with no path or query",
                redacted(s)
            ));
        }
        let port = authority.port_u16().ok_or_else(|| {
            format!(
                "{:?} has no port; give it as http://host:port (e.g. :3128)",
                redacted(s)
            )
        })?;
        if port == 0 {
            return Err(format!("{:?}: port 0 is not a port", redacted(s)));
        }
        let host = authority.host();
        if host.is_empty() {
            return Err(format!("{:?} has no host", redacted(s)));
        }
        let credentials = match authority.as_str().rsplit_once('@') {
            None => None,
            Some((userinfo, _)) => Some(ProxyCredentials::parse(userinfo)?),
        };
        Ok(Self {
            host: host.to_owned(),
            port,
            credentials,
        })
    }

    /// The proxy's host as written (an IPv6 address in brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's host for a socket connection (no brackets).
    pub fn connect_host(&self) -> &str {
        self.host.trim_start_matches('[').trim_end_matches(']')
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The Basic credentials, if the setting carried any.
    pub fn credentials(&self) -> Option<&ProxyCredentials> {
        self.credentials.as_ref()
    }
}

impl ProxyCredentials {
    fn parse(userinfo: &str) -> Result<Self, String> {
        let decode = |part: &str, what: &str| {
            percent_encoding::percent_decode_str(part)
                .decode_utf8()
                .map(|s| s.into_owned())
                .map_err(|_| format!("the proxy {what} is not UTF-8 once percent-decoded"))
        };
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let user = decode(user, "user name")?;
        let password = Zeroizing::new(decode(password, "password")?);
        if user.is_empty() {
            return Err("the proxy credentials have an empty user name".to_owned());
        }
        if user.contains(':') {
            return Err(
                "the proxy user name contains ':', which Basic authentication cannot carry"
                    .to_owned(),
            );
        }
        Ok(Self { user, password })
    }

    /// The `Proxy-Authorization` value: `Basic base64(user:password)`.
    pub fn basic(&self) -> Zeroizing<String> {
        use base64::Engine;
        let pair = Zeroizing::new(format!("{}:{}", self.user, self.password.as_str()));
        Zeroizing::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair.as_bytes())
        ))
    }
}

/// `s` with any userinfo replaced, for error messages.
fn redacted(s: &str) -> String {
    match s.split_once("://") {
        Some((scheme, rest)) => {
            let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
            match rest[..end].rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://…@{host}{}", &rest[end..]),
                None => s.to_owned(),
            }
        }
        None => match s.rsplit_once('@') {
            Some((_, host)) => format!("…@{host}"),
            None => s.to_owned(),
        },
    }
}

impl fmt::Display for ProxySettings {
    /// `http://host:port`, never the credentials.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "http://{}:{}", self.host, self.port)
    }
}

impl fmt::Debug for ProxySettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxySettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("credentials", &self.credentials)
            .finish()
    }
}

impl fmt::Debug for ProxyCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProxyCredentials(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_port() {
        let p = ProxySettings::parse("http://proxy.example:3128").expect("valid");
        assert_eq!((p.host(), p.port()), ("proxy.example", 3128));
        assert!(p.credentials().is_none());
        assert_eq!(p.to_string(), "http://proxy.example:3128");
        let p = ProxySettings::parse("http://[::1]:8080/").expect("valid");
        assert_eq!((p.host(), p.connect_host()), ("[::1]", "::1"));
        assert_eq!(p.to_string(), "http://[::1]:8080");
    }

    #[test]
    fn credentials_are_decoded_and_never_shown() {
        let p = ProxySettings::parse("http://court%40sz:p%3Ass%20w@10.0.0.1:3128").expect("valid");
        let c = p.credentials().expect("credentials");
        assert_eq!(c.user, "court@sz");
        assert_eq!(c.password.as_str(), "p:ss w");
        // base64("court@sz:p:ss w")
        assert_eq!(c.basic().as_str(), "Basic Y291cnRAc3o6cDpzcyB3");
        for shown in [p.to_string(), format!("{p:?}")] {
            assert!(!shown.contains("court"), "{shown}");
            assert!(!shown.contains("ss"), "{shown}");
        }
        let p = ProxySettings::parse("http://user@proxy:3128").expect("valid");
        assert_eq!(
            p.credentials().expect("credentials").basic().as_str(),
            "Basic dXNlcjo="
        );
    }

    #[test]
    fn what_is_refused_says_why_without_the_password() {
        for (s, why) in [
            ("https://proxy:3128", "not supported"),
            ("socks5://proxy:1080", "must be http://host:port"),
            ("http://proxy", "has no port"),
            ("http://proxy:3128/path", "no path or query"),
            ("http://proxy:3128?x=1", "no path or query"),
            ("http://proxy:0", "port 0"),
            ("proxy:3128", "must be http://host:port"),
            ("http://:secret@proxy:3128", "empty user name"),
            ("http://us%3Aer:secret@proxy:3128", "contains ':'"),
            ("http://user:secret@proxy", "has no port"),
        ] {
            let e = ProxySettings::parse(s).expect_err(s);
            assert!(e.contains(why), "{s}: {e}");
            assert!(!e.contains("secret"), "{s}: {e}");
        }
    }
}
