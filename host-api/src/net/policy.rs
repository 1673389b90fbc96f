//! Network permission: `--allow-net`'s rules, which addresses a process
//! may use, and which names it may have the host look up.

use std::net::{IpAddr, SocketAddr};

/// The host part of a rule.
#[derive(Clone, Debug, PartialEq, Eq)]
enum RuleHost {
    Any,
    Ip(IpAddr),
    /// Lower-case.
    Name(String),
}

/// One `HOST[:PORT]` rule of `--allow-net`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetRule {
    host: RuleHost,
    port: Option<u16>,
}

impl NetRule {
    /// Parses `*`, `*:PORT`, `IP`, `IP:PORT`, `[IPv6]`, `[IPv6]:PORT`,
    /// `NAME`, `NAME:PORT`.
    pub fn parse(text: &str) -> Result<NetRule, String> {
        let bad = |why: &str| format!("bad network rule {text:?}: {why} (expected HOST[:PORT])");
        let text = text.trim();
        if text.is_empty() {
            return Err(bad("empty"));
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(NetRule {
                host: RuleHost::Ip(ip),
                port: None,
            });
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (ip, after) = rest.split_once(']').ok_or_else(|| bad("missing ']'"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
            };
            (ip, port)
        } else {
            match text.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (text, None),
            }
        };
        let port = match port {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| bad("the port is not 0..65535"))?,
            ),
        };
        let host = if host == "*" {
            RuleHost::Any
        } else if let Ok(ip) = host.parse::<IpAddr>() {
            RuleHost::Ip(ip)
        } else if !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
        {
            RuleHost::Name(host.to_ascii_lowercase())
        } else {
            return Err(bad("the host is not an IP address, a host name or *"));
        };
        Ok(NetRule { host, port })
    }

    fn port_matches(&self, port: u16) -> bool {
        self.port.is_none_or(|p| p == port)
    }

    /// Whether `other` allows nothing this rule does not.
    fn covers(&self, other: &NetRule) -> bool {
        let host = self.host == RuleHost::Any || self.host == other.host;
        let port = self.port.is_none() || self.port == other.port;
        host && port
    }
}

impl std::fmt::Display for NetRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            RuleHost::Any => write!(f, "*")?,
            RuleHost::Ip(IpAddr::V6(ip)) if self.port.is_some() => write!(f, "[{ip}]")?,
            RuleHost::Ip(ip) => write!(f, "{ip}")?,
            RuleHost::Name(n) => write!(f, "{n}")?,
        }
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

/// Which addresses a process may listen on, bind, connect and send to.
/// Empty: no network at all (the default).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NetPolicy {
    rules: Vec<NetRule>,
}

impl NetPolicy {
    /// No network.
    pub fn deny() -> NetPolicy {
        NetPolicy::default()
    }

    /// Any address (`--allow-net`).
    pub fn allow_all() -> NetPolicy {
        NetPolicy {
            rules: vec![NetRule {
                host: RuleHost::Any,
                port: None,
            }],
        }
    }

    /// The rules of a comma-separated list (`--allow-net=a:1,b`).
    pub fn parse(list: &str) -> Result<NetPolicy, String> {
        let items: Vec<&str> = list.split(',').filter(|s| !s.trim().is_empty()).collect();
        if items.is_empty() {
            return Err(
                "an empty list of network rules (for any address: `--allow-net` alone, or \
                 TROUPE_ALLOW_NET=*)"
                    .into(),
            );
        }
        NetPolicy::from_rules(items)
    }

    /// The policy made of these rules.
    pub fn from_rules<S: AsRef<str>>(
        rules: impl IntoIterator<Item = S>,
    ) -> Result<NetPolicy, String> {
        Ok(NetPolicy {
            rules: rules
                .into_iter()
                .map(|r| NetRule::parse(r.as_ref()))
                .collect::<Result<_, _>>()?,
        })
    }

    /// The rules of both policies.
    pub fn union(mut self, other: &NetPolicy) -> NetPolicy {
        self.rules.extend(other.rules.iter().cloned());
        self
    }

    /// Whether any network access is allowed.
    pub fn is_enabled(&self) -> bool {
        !self.rules.is_empty()
    }

    /// The first rule of `child` this policy does not cover, if any.
    pub fn uncovered<'a>(&self, child: &'a NetPolicy) -> Option<&'a NetRule> {
        child
            .rules
            .iter()
            .find(|c| !self.rules.iter().any(|r| r.covers(c)))
    }

    /// The rules, as `--allow-net` takes them.
    pub fn describe(&self) -> String {
        if self.rules.is_empty() {
            return "none".into();
        }
        let rules: Vec<String> = self.rules.iter().map(ToString::to_string).collect();
        rules.join(",")
    }

    /// Whether the VM may look `host` (a name, as the guest wrote it) up in
    /// the DNS for this process: only a name a rule names, unless a rule is
    /// `*`. Any other look-up would let a guest send data out in the names
    /// it asks for, whatever its rules allow it to connect to.
    pub fn may_resolve(&self, host: &str) -> bool {
        self.rules.iter().any(|r| match &r.host {
            RuleHost::Any => true,
            RuleHost::Ip(_) => false,
            RuleHost::Name(name) => name.eq_ignore_ascii_case(host),
        })
    }

    /// Of `addrs` (what `host`, as the guest wrote it, resolved to), those
    /// this policy allows.
    pub(super) async fn allowed(&self, host: &str, addrs: Vec<SocketAddr>) -> Vec<SocketAddr> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let mut allowed = Vec::with_capacity(addrs.len());
        for addr in addrs {
            if self.allows(host, addr).await {
                allowed.push(addr);
            }
        }
        allowed
    }

    pub(super) async fn allows(&self, host: &str, addr: SocketAddr) -> bool {
        for rule in self.rules.iter().filter(|r| r.port_matches(addr.port())) {
            let ok = match &rule.host {
                RuleHost::Any => true,
                RuleHost::Ip(ip) => *ip == addr.ip(),
                RuleHost::Name(name) => {
                    name.eq_ignore_ascii_case(host)
                        || tokio::net::lookup_host((name.as_str(), addr.port()))
                            .await
                            .is_ok_and(|mut a| a.any(|a| a.ip() == addr.ip()))
                }
            };
            if ok {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::dns::permitted;
    use troupe_abi::err;

    fn rule(s: &str) -> NetRule {
        NetRule::parse(s).unwrap()
    }

    #[test]
    fn rules_parse_hosts_and_ports() {
        assert_eq!(rule("*").to_string(), "*");
        assert_eq!(rule("*:80").to_string(), "*:80");
        assert_eq!(rule("127.0.0.1").to_string(), "127.0.0.1");
        assert_eq!(rule("127.0.0.1:8080").to_string(), "127.0.0.1:8080");
        assert_eq!(rule("::1").to_string(), "::1");
        assert_eq!(rule("[::1]:7").to_string(), "[::1]:7");
        assert_eq!(rule("DB:5432").to_string(), "db:5432");
        for bad in ["", "db:99999", "db:x", "[::1", "a b", "[::1]x", ":80"] {
            assert!(NetRule::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(NetPolicy::parse(",").is_err());
        assert_eq!(
            NetPolicy::parse("a:1, b").unwrap().describe(),
            "a:1,b".to_string()
        );
    }

    #[test]
    fn only_names_a_rule_names_are_looked_up_unless_a_rule_is_any() {
        let ips = NetPolicy::parse("127.0.0.1:8080,[::1]").unwrap();
        assert!(!ips.may_resolve("localhost"));
        assert!(!ips.may_resolve("secret-data.attacker.example"));
        let named = NetPolicy::parse("DB:5432,127.0.0.1").unwrap();
        assert!(named.may_resolve("db") && named.may_resolve("Db"));
        assert!(!named.may_resolve("db.attacker.example"));
        assert!(NetPolicy::parse("*:443").unwrap().may_resolve("anything"));
        assert!(!NetPolicy::deny().may_resolve("localhost"));
    }

    #[test]
    fn children_get_no_more_than_their_parent() {
        let parent = NetPolicy::parse("127.0.0.1:8080,db").unwrap();
        let ok = NetPolicy::parse("127.0.0.1:8080,db:5432").unwrap();
        assert_eq!(parent.uncovered(&ok), None);
        for wider in ["127.0.0.1", "*:8080", "db2", "10.0.0.1:8080"] {
            let child = NetPolicy::parse(wider).unwrap();
            assert!(parent.uncovered(&child).is_some(), "{wider} allowed");
        }
        assert_eq!(NetPolicy::allow_all().uncovered(&parent), None);
        assert!(NetPolicy::deny().uncovered(&parent).is_some());
        assert_eq!(parent.uncovered(&NetPolicy::deny()), None);
    }

    #[tokio::test]
    async fn policies_match_addresses_by_ip_port_and_name() {
        let p = NetPolicy::parse("127.0.0.1:8080,localhost:9000").unwrap();
        let a = |s: &str| -> SocketAddr { s.parse().unwrap() };
        assert!(p.allows("127.0.0.1", a("127.0.0.1:8080")).await);
        assert!(!p.allows("127.0.0.1", a("127.0.0.1:8081")).await);
        assert!(!p.allows("127.0.0.2", a("127.0.0.2:8080")).await);
        // By the name as written, and by an address the rule's name has.
        assert!(p.allows("LOCALHOST", a("127.0.0.1:9000")).await);
        assert!(p.allows("127.0.0.1", a("127.0.0.1:9000")).await);
        assert!(!NetPolicy::deny().allows("x", a("127.0.0.1:1")).await);
        let denied = permitted(&NetPolicy::deny(), "connect to", "127.0.0.1:1")
            .await
            .unwrap_err();
        assert_eq!(denied.code, err::PERMISSION_DENIED);
        assert!(denied.message.contains("--allow-net"), "{}", denied.message);
    }
}
