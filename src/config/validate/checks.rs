//! The `checks` list: health checks (ping or script), their timing and where they run.

use super::super::defaults;
use super::super::model::{CheckConfig, CheckProbe};
use super::super::raw::{self, Field, Lenient};
use super::ctx::{join, Ctx};
use super::nodes::NodeIndex;
use std::collections::HashMap;
use std::net::IpAddr;

pub(super) fn checks(
    ctx: &mut Ctx,
    raw: Field<Vec<Lenient<raw::RawCheck>>>,
    index: &NodeIndex,
) -> Vec<CheckConfig> {
    let Some(list) = raw.and_then(|r| ctx.lenient("checks", r)) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, c) in list.into_iter().enumerate() {
        let p = format!("checks[{i}]");
        let Some(c) = ctx.lenient(&p, c) else {
            continue;
        };
        if let Some(check) = one_check(ctx, &p, i, c, &mut names, index) {
            out.push(check);
        }
    }
    out
}

/// One entry; `None` when its name or probe did not convert.
fn one_check(
    ctx: &mut Ctx,
    p: &str,
    i: usize,
    c: raw::RawCheck,
    names: &mut HashMap<String, usize>,
    index: &NodeIndex,
) -> Option<CheckConfig> {
    ctx.unknown(p, &c.unknown, raw::RawCheck::KEYS);
    let name = ctx.name(p, "name", c.name);
    if let Some(n) = &name {
        if let Some(other) = names.insert(n.clone(), i) {
            ctx.at_value(
                &join(p, "name"),
                format!("duplicate check name `{n}` (also checks[{other}])"),
            );
        }
    }
    let probe = probe(ctx, p, c.ping, c.script);
    let interval = ctx.positive_duration_or(p, "interval", c.interval, defaults::CHECK_INTERVAL);
    let timeout = ctx.positive_duration_or(p, "timeout", c.timeout, defaults::CHECK_TIMEOUT);
    let fall = ctx.count_or(p, "fall", c.fall, defaults::CHECK_FALL);
    let rise = ctx.count_or(p, "rise", c.rise, defaults::CHECK_RISE);
    let nodes = match ctx.field(p, "nodes", c.nodes) {
        None => Vec::new(),
        Some(list) => {
            if list.is_empty() {
                ctx.at_value(&join(p, "nodes"), "a check that runs on no node is useless: list at least one node or omit `nodes` for all");
            }
            for (j, n) in list.iter().enumerate() {
                index.resolve(ctx, &format!("{p}.nodes[{j}]"), n);
            }
            list
        }
    };
    Some(CheckConfig {
        name: name?,
        probe: probe?,
        interval,
        timeout,
        fall,
        rise,
        nodes,
    })
}

/// Exactly one of `ping` and `script`.
fn probe(
    ctx: &mut Ctx,
    p: &str,
    ping: Field<Vec<Lenient<String>>>,
    script: Field<String>,
) -> Option<CheckProbe> {
    match (ping, script) {
        (Some(_), Some(_)) => {
            ctx.at_key(p, "give either `ping` or `script`, not both");
            None
        }
        (None, None) => {
            ctx.at_key(p, "missing `ping` (a list of addresses) or `script`");
            None
        }
        (Some(ping), None) => {
            let targets = ctx.lenient(&join(p, "ping"), ping)?;
            ping_targets(ctx, &join(p, "ping"), targets)
        }
        (None, Some(script)) => ctx.lenient(&join(p, "script"), script).and_then(|cmd| {
            if cmd.trim().is_empty() || cmd.contains('\0') {
                ctx.at_value(
                    &join(p, "script"),
                    "must be a non-empty command without NUL",
                );
                None
            } else {
                Some(CheckProbe::Script(cmd))
            }
        }),
    }
}

fn ping_targets(ctx: &mut Ctx, pp: &str, targets: Vec<Lenient<String>>) -> Option<CheckProbe> {
    if targets.is_empty() {
        ctx.at_value(pp, "list at least one address to ping");
        return None;
    }
    let mut ok = Vec::new();
    let mut all = true;
    for (j, t) in targets.into_iter().enumerate() {
        let tp = format!("{pp}[{j}]");
        let Some(t) = ctx.lenient(&tp, t) else {
            all = false;
            continue;
        };
        // Addresses only: a health check must not depend on DNS.
        match t.parse::<IpAddr>() {
            Ok(ip) if !ip.is_unspecified() && !ip.is_multicast() => ok.push(ip),
            _ => {
                ctx.at_value(&tp, format!("`{t}` is not a unicast IPv4 or IPv6 address"));
                all = false;
            }
        }
    }
    all.then_some(CheckProbe::Ping(ok))
}
