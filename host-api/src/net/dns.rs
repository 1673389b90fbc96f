//! Addresses and names: `HOST:PORT` arguments, looking names up (only
//! those the caller's rules allow), and the `resolve` host function.

use std::net::{IpAddr, SocketAddr};

use troupe_abi::err;

use super::{write_text, NetPolicy};
use crate::call::{Fault, Guest};
use crate::{HostError, ProcessCtx};

/// Splits `HOST:PORT` (HOST may be `[IPv6]`).
pub(super) fn split_addr(addr: &str) -> Result<(String, u16), HostError> {
    let bad = |why: &str| {
        HostError::new(
            err::INVALID_ARGUMENT,
            format!("address {addr:?}: {why} (expected HOST:PORT)"),
        )
    };
    let (host, port) = addr.rsplit_once(':').ok_or_else(|| bad("no port"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| bad("the port is not 0..65535"))?;
    let host = match host.strip_prefix('[') {
        Some(h) => h.strip_suffix(']').ok_or_else(|| bad("missing ']'"))?,
        None if host.contains(':') => return Err(bad("an IPv6 address must be in brackets")),
        None => host,
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    Ok((host.to_owned(), port))
}

/// Resolves `host` (a name or an IP) with `port`.
async fn lookup(host: &str, port: u16) -> Result<Vec<SocketAddr>, HostError> {
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| HostError::new(err::HOST_NOT_FOUND, format!("cannot resolve {host:?}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(HostError::new(
            err::HOST_NOT_FOUND,
            format!("{host:?} has no address"),
        ));
    }
    Ok(addrs)
}

/// Resolves `addr` and keeps the addresses the caller's policy allows for
/// `action` (e.g. "connect to").
pub(super) async fn permitted(
    policy: &NetPolicy,
    action: &str,
    addr: &str,
) -> Result<Vec<SocketAddr>, HostError> {
    let (host, port) = split_addr(addr)?;
    if !policy.is_enabled() || !(host.parse::<IpAddr>().is_ok() || policy.may_resolve(&host)) {
        return Err(denied(action, addr, policy));
    }
    let addrs = lookup(&host, port).await?;
    let allowed = policy.allowed(&host, addrs).await;
    if allowed.is_empty() {
        return Err(denied(action, addr, policy));
    }
    Ok(allowed)
}

fn denied(action: &str, addr: &str, policy: &NetPolicy) -> HostError {
    let why = if policy.is_enabled() {
        format!("this process may use only {}", policy.describe())
    } else {
        "this process has no network permission: networking is off unless the VM is \
         started with --allow-net (any address) or --allow-net=HOST:PORT,... (those only; \
         TROUPE_ALLOW_NET for the containerd shim), and a parent can spawn a child with less (or none)"
            .to_string()
    };
    HostError::new(
        err::PERMISSION_DENIED,
        format!("not allowed to {action} {addr}: {why}"),
    )
}

/// `resolve`: the addresses of a name, one per line.
pub(super) async fn resolve<T: ProcessCtx>(
    g: &mut Guest<'_, '_, T>,
    (name_ptr, name_len, buf_ptr, buf_len, out_len): (i32, i32, i32, i32, i32),
) -> Result<i32, Fault> {
    g.check("buf", buf_ptr, buf_len)?;
    g.check("out_len", out_len, 4)?;
    let name = g.read_str("name", name_ptr, name_len)?;
    let policy = g.ctx().net_policy().clone();
    if !policy.is_enabled() {
        return Err(denied("resolve", &name, &policy).into());
    }
    let host = name.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(HostError::new(err::INVALID_ARGUMENT, "an empty host name").into());
    }
    if host.parse::<IpAddr>().is_err() && !policy.may_resolve(host) {
        return Err(HostError::new(
            err::PERMISSION_DENIED,
            format!(
                "not allowed to resolve {host:?}: this process may resolve only the names its \
                 rules name ({}), or any name with a rule `*`",
                policy.describe()
            ),
        )
        .into());
    }
    let mut ips: Vec<IpAddr> = Vec::new();
    for a in lookup(host, 0).await? {
        if !ips.contains(&a.ip()) {
            ips.push(a.ip());
        }
    }
    let text = ips.iter().map(|ip| format!("{ip}\n")).collect::<String>();
    write_text(g, &text, buf_ptr, buf_len, out_len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_name_no_rule_names_is_refused_before_any_lookup() {
        // With a rule for 127.0.0.1 only, "localhost" (which would resolve
        // to it) is refused: looking it up at all is what is not allowed.
        let policy = NetPolicy::parse("127.0.0.1").unwrap();
        let e = permitted(&policy, "connect to", "localhost:80")
            .await
            .unwrap_err();
        assert_eq!(e.code, err::PERMISSION_DENIED, "{e}");
        let ok = permitted(&policy, "connect to", "127.0.0.1:80").await;
        assert_eq!(ok.unwrap(), vec!["127.0.0.1:80".parse().unwrap()]);
    }

    #[test]
    fn addresses_split_into_host_and_port() {
        assert_eq!(split_addr("a:1").unwrap(), ("a".into(), 1));
        assert_eq!(split_addr("[::1]:80").unwrap(), ("::1".into(), 80));
        for bad in ["a", "a:x", ":80", "::1:80", "[::1:80"] {
            assert_eq!(
                split_addr(bad).unwrap_err().code,
                err::INVALID_ARGUMENT,
                "{bad}"
            );
        }
    }
}
