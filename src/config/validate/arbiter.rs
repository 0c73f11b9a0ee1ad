//! The `quorum.arbiter` section: an etcd cluster that gives one more vote. Checks what
//! etcd can honour (whole-second TTLs no shorter than its minimum) against `deadtime`.

use super::super::defaults;
use super::super::model::{ArbiterConfig, EtcdConfig, EtcdTls};
use super::super::raw::{self, Field};
use super::ctx::Ctx;
use std::time::Duration;

pub(super) fn arbiter(
    ctx: &mut Ctx,
    raw: Field<raw::RawArbiter>,
    deadtime: Duration,
) -> Option<ArbiterConfig> {
    const P: &str = "quorum.arbiter";
    let a = ctx.lenient(P, raw?)?;
    ctx.unknown(P, &a.unknown, raw::RawArbiter::KEYS);
    let etcd = ctx.required(P, "etcd", a.etcd)?;
    let etcd = etcd_section(ctx, etcd, deadtime)?;
    Some(ArbiterConfig { etcd })
}

fn etcd_section(ctx: &mut Ctx, e: raw::RawEtcd, deadtime: Duration) -> Option<EtcdConfig> {
    const P: &str = "quorum.arbiter.etcd";
    ctx.unknown(P, &e.unknown, raw::RawEtcd::KEYS);
    let listed = ctx.required(P, "endpoints", e.endpoints)?;
    let endpoints = endpoints(ctx, listed)?;
    let prefix = ctx.field_or(P, "prefix", e.prefix, defaults::ETCD_PREFIX.to_string());
    if !prefix.starts_with('/') || prefix.ends_with('/') || prefix.contains("//") {
        ctx.at_value(
            "quorum.arbiter.etcd.prefix",
            format!("`{prefix}` must start with `/` and not end with one (e.g. /tandem)"),
        );
    }
    let tls = e
        .tls
        .and_then(|t| ctx.lenient("quorum.arbiter.etcd.tls", t));
    let tls = tls.map(|t| tls_section(ctx, t));
    check_scheme(ctx, &endpoints, tls.as_ref());
    let user = ctx.field(P, "user", e.user);
    let password_file = ctx
        .field(P, "password_file", e.password_file)
        .and_then(|p| ctx.absolute_path("quorum.arbiter.etcd.password_file", p));
    if user.is_some() != password_file.is_some() {
        ctx.at_key(
            P,
            "etcd authentication needs both `user` and `password_file`, or neither",
        );
    }
    let min_ttl = match e.min_ttl {
        None => defaults::ETCD_MIN_TTL,
        f => ctx.positive_duration(P, "min_ttl", f)?,
    };
    let ttl = match e.ttl {
        None => defaults::etcd_ttl(deadtime),
        f => ctx.positive_duration(P, "ttl", f)?,
    };
    check_ttl(ctx, ttl, min_ttl, deadtime)?;
    Some(EtcdConfig {
        endpoints,
        prefix,
        tls,
        user,
        password_file,
        ttl,
        min_ttl,
    })
}

/// Each endpoint is a URL etcd clients accept: a scheme, a host and a port.
fn endpoints(ctx: &mut Ctx, list: Vec<String>) -> Option<Vec<String>> {
    if list.is_empty() {
        ctx.at_value(
            "quorum.arbiter.etcd.endpoints",
            "give at least one etcd endpoint",
        );
        return None;
    }
    let mut ok = true;
    for (j, url) in list.iter().enumerate() {
        let rest = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"));
        let valid = rest
            .and_then(|r| r.rsplit_once(':'))
            .is_some_and(|(host, p)| !host.is_empty() && p.parse::<u16>().is_ok());
        if !valid {
            ok = false;
            ctx.at_value(
                &format!("quorum.arbiter.etcd.endpoints[{j}]"),
                format!("`{url}`: expected http://host:port or https://host:port"),
            );
        }
    }
    ok.then_some(list)
}

/// TLS is all or nothing: `https://` endpoints need the CA that signed etcd's
/// certificate (no system roots are used), and `tls` with `http://` endpoints would be
/// ignored silently.
fn check_scheme(ctx: &mut Ctx, endpoints: &[String], tls: Option<&EtcdTls>) {
    let https = endpoints
        .iter()
        .filter(|e| e.starts_with("https://"))
        .count();
    if https != 0 && https != endpoints.len() {
        ctx.at_value(
            "quorum.arbiter.etcd.endpoints",
            "mix of http:// and https:// endpoints: use one scheme for every member",
        );
    } else if https != 0 && tls.is_none_or(|t| t.ca.is_none()) {
        ctx.at_key(
            "quorum.arbiter.etcd",
            "https:// endpoints need `tls.ca`, the CA that signed etcd's certificate",
        );
    } else if https == 0 && tls.is_some() {
        ctx.at_key(
            "quorum.arbiter.etcd.tls",
            "`tls` is set but the endpoints are http://: use https:// endpoints",
        );
    }
}

fn tls_section(ctx: &mut Ctx, t: raw::RawEtcdTls) -> EtcdTls {
    const P: &str = "quorum.arbiter.etcd.tls";
    ctx.unknown(P, &t.unknown, raw::RawEtcdTls::KEYS);
    let mut path = |key: &str, f: Field<String>| {
        ctx.field(P, key, f)
            .and_then(|p| ctx.absolute_path(&format!("{P}.{key}"), p))
    };
    let tls = EtcdTls {
        ca: path("ca", t.ca),
        cert: path("cert", t.cert),
        key: path("key", t.key),
    };
    if tls.cert.is_some() != tls.key.is_some() {
        ctx.at_key(
            P,
            "a client certificate needs its key: give `cert` and `key` together",
        );
    }
    tls
}

/// etcd counts TTLs in whole seconds and silently raises one below its minimum; a vote
/// that outlives `deadtime` delays every takeover, one shorter than `deadtime` cannot
/// carry an owner's lease alone.
fn check_ttl(ctx: &mut Ctx, ttl: Duration, min_ttl: Duration, deadtime: Duration) -> Option<()> {
    const K: &str = "quorum.arbiter.etcd.ttl";
    if ttl.subsec_nanos() != 0 || min_ttl.subsec_nanos() != 0 {
        ctx.at_value(
            K,
            "etcd counts lease TTLs in whole seconds: give ttl and min_ttl in whole seconds",
        );
        return None;
    }
    if ttl < min_ttl {
        ctx.at_value(
            K,
            format!(
                "a ttl of {}s is below what etcd grants ({}s, min_ttl: ceil(1.5 × its election timeout)); etcd would hold a dead owner's vote longer than deadtime. With deadtime {} ms, raise heartbeat.deadtime to at least {}s",
                ttl.as_secs(),
                min_ttl.as_secs(),
                deadtime.as_millis(),
                min_ttl.as_secs()
            ),
        );
        return None;
    }
    if ttl < deadtime {
        ctx.at_value(
            K,
            format!(
                "ttl {}s is shorter than deadtime ({} ms): the arbiter's vote would end before the peers' promises",
                ttl.as_secs(),
                deadtime.as_millis()
            ),
        );
        return None;
    }
    Some(())
}
