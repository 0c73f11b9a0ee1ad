//! One resource of a group, by kind (`vip`, `exec`, `lsb`, `ocf`, `systemd`): its
//! settings, its name (given or derived from what it manages) and its timeout.

use super::super::defaults;
use super::super::model::{ResourceConfig, ResourceKind};
use super::super::raw::{self, AnyKey, Field, Lenient, RawDuration, RawResource, Unknown};
use super::ctx::{check_ifname, join, Ctx};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const DEFAULT_TIMEOUT: Option<Duration> = Some(defaults::RESOURCE_TIMEOUT);

pub(super) fn resource(ctx: &mut Ctx, rp: &str, raw: RawResource) -> Option<ResourceConfig> {
    match raw {
        RawResource::Vip(body) => vip(ctx, rp, body),
        RawResource::Exec(body) => exec(ctx, rp, body),
        RawResource::Lsb(body) => lsb(ctx, rp, body),
        RawResource::Ocf(body) => ocf(ctx, rp, body),
        RawResource::Systemd(body) => systemd(ctx, rp, body),
    }
}

fn vip(ctx: &mut Ctx, rp: &str, body: Lenient<raw::RawVip>) -> Option<ResourceConfig> {
    let p = format!("{rp}.vip");
    let mut v = ctx.lenient(&p, body)?;
    not_promotable(ctx, &p, &mut v.unknown, "a vip is an address on the owner");
    ctx.unknown(&p, &v.unknown, raw::RawVip::KEYS);
    let address = ctx.required(&p, "address", v.address).and_then(|a| {
        let ap = join(&p, "address");
        let parsed = a.split_once('/').and_then(|(ip, prefix)| Some((ip.parse::<IpAddr>().ok()?, prefix.parse::<u8>().ok()?)));
        match parsed {
            Some((ip, prefix)) if prefix <= if ip.is_ipv4() { 32 } else { 128 } => {
                if ip.is_unspecified() || ip.is_multicast() || ip.is_loopback() {
                    ctx.at_value(&ap, format!("`{a}` cannot be a virtual IP (unspecified, multicast or loopback)"));
                    None
                } else {
                    Some((ip, prefix))
                }
            }
            Some((_, prefix)) => {
                ctx.at_value(&ap, format!("prefix length /{prefix} is too long"));
                None
            }
            None => {
                ctx.at_value(&ap, format!("`{a}` is not an address with a prefix length, like `192.0.2.100/24` or `2001:db8::100/64`"));
                None
            }
        }
    });
    let interface =
        ctx.required(&p, "interface", v.interface)
            .and_then(|i| match check_ifname(&i) {
                Ok(()) => Some(i),
                Err(e) => {
                    ctx.at_value(&join(&p, "interface"), e);
                    None
                }
            });
    let label = ctx.field(&p, "label", v.label).and_then(|l| {
        let lp = join(&p, "label");
        if address.is_some_and(|(ip, _)| ip.is_ipv6()) {
            ctx.at_value(&lp, "labels exist only for IPv4 addresses");
            return None;
        }
        let dev = interface.as_deref().unwrap_or("");
        if l.len() > 15 || !(l == dev || l.starts_with(&format!("{dev}:"))) {
            ctx.at_value(
                &lp,
                format!(
                    "`{l}` must be `{dev}` or start with `{dev}:` and be at most 15 characters"
                ),
            );
            return None;
        }
        Some(l)
    });
    let garp_count = ctx.field_or(&p, "garp_count", v.garp_count, defaults::VIP_GARP_COUNT);
    let garp_interval = ctx.positive_duration_or(
        &p,
        "garp_interval",
        v.garp_interval,
        defaults::VIP_GARP_INTERVAL,
    );
    let garp_refresh = if v.garp_refresh.is_some() {
        ctx.positive_duration(&p, "garp_refresh", v.garp_refresh)
    } else {
        None
    };
    let timeout = timeout(ctx, &p, v.timeout, DEFAULT_TIMEOUT);
    let name = match ctx.field(&p, "name", v.name) {
        Some(n) => resource_name(ctx, &join(&p, "name"), n)?,
        None => format!("vip-{}", address?.0),
    };
    let (address, prefix) = address?;
    Some(ResourceConfig {
        name,
        kind: ResourceKind::Vip {
            address,
            prefix,
            interface: interface?,
            label,
            garp_count,
            garp_interval,
            garp_refresh,
        },
        timeout,
        promotable: false,
    })
}

fn exec(ctx: &mut Ctx, rp: &str, body: Lenient<raw::RawExec>) -> Option<ResourceConfig> {
    let p = format!("{rp}.exec");
    let e = ctx.lenient(&p, body)?;
    ctx.unknown(&p, &e.unknown, raw::RawExec::KEYS);
    let name = ctx
        .required(&p, "name", e.name)
        .and_then(|n| resource_name(ctx, &join(&p, "name"), n));
    let start = nonempty(ctx, &p, "start", e.start, true);
    let stop = nonempty(ctx, &p, "stop", e.stop, true);
    let monitor = nonempty(ctx, &p, "monitor", e.monitor, false);
    let promotable = ctx.field_or(
        &p,
        "promotable",
        e.promotable,
        defaults::RESOURCE_PROMOTABLE,
    );
    let promote = nonempty(ctx, &p, "promote", e.promote, false);
    let demote = nonempty(ctx, &p, "demote", e.demote, false);
    let (promote, demote) = exec_roles(ctx, &p, promotable, promote, demote);
    let timeout = timeout(ctx, &p, e.timeout, DEFAULT_TIMEOUT);
    Some(ResourceConfig {
        name: name?,
        kind: ResourceKind::Exec {
            start: start?,
            stop: stop?,
            monitor,
            promote,
            demote,
        },
        timeout,
        promotable,
    })
}

/// `promote` and `demote` of an exec: both with `promotable: true`, neither without.
/// A half-promotable exec would leave a primary that nothing can demote.
fn exec_roles(
    ctx: &mut Ctx,
    p: &str,
    promotable: bool,
    promote: Option<String>,
    demote: Option<String>,
) -> (Option<String>, Option<String>) {
    if !promotable {
        for (key, cmd) in [("promote", &promote), ("demote", &demote)] {
            if cmd.is_some() {
                ctx.at_key(
                    &join(p, key),
                    format!("`{key}` is only for promotable resources: add `promotable: true`, or remove `{key}`"),
                );
            }
        }
        return (None, None);
    }
    for (key, cmd) in [("promote", &promote), ("demote", &demote)] {
        if cmd.is_none() {
            ctx.at_key(
                p,
                format!("missing required key `{key}`: a promotable exec resource needs both `promote` and `demote`"),
            );
        }
    }
    (promote, demote)
}

/// Reports `promotable` on a kind that has no roles, with why, instead of the generic
/// "unknown key" (which would suggest the user misspelt it), and takes the key out of
/// `unknown` so it is reported once.
fn not_promotable(ctx: &mut Ctx, p: &str, unknown: &mut Unknown, why: &str) {
    if unknown.remove(&AnyKey("promotable".into())).is_some() {
        ctx.at_key(
            &join(p, "promotable"),
            format!("only ocf and exec resources can be promotable ({why})"),
        );
    }
}

fn lsb(ctx: &mut Ctx, rp: &str, body: Lenient<raw::RawLsb>) -> Option<ResourceConfig> {
    let p = format!("{rp}.lsb");
    let mut l = ctx.lenient(&p, body)?;
    not_promotable(
        ctx,
        &p,
        &mut l.unknown,
        "init scripts know no promote or demote",
    );
    ctx.unknown(&p, &l.unknown, raw::RawLsb::KEYS);
    let timeout = timeout(ctx, &p, l.timeout, DEFAULT_TIMEOUT);
    let given = ctx.required(&p, "name", l.name)?;
    let np = join(&p, "name");
    let (name, script) = if given.starts_with('/') {
        let file = Path::new(&given)
            .file_name()
            .map(|f| f.to_string_lossy().into_owned());
        match file {
            Some(f) => (f, PathBuf::from(&given)),
            None => {
                ctx.at_value(&np, format!("`{given}` does not name a script"));
                return None;
            }
        }
    } else if given.contains('/') || given == "." || given == ".." {
        ctx.at_value(
            &np,
            format!("`{given}`: give a script name in /etc/init.d or an absolute path"),
        );
        return None;
    } else {
        (
            given.clone(),
            Path::new(defaults::LSB_SCRIPT_DIR).join(&given),
        )
    };
    let name = resource_name(ctx, &np, name)?;
    Some(ResourceConfig {
        name,
        kind: ResourceKind::Lsb { script },
        timeout,
        promotable: false,
    })
}

fn ocf(ctx: &mut Ctx, rp: &str, body: Lenient<raw::RawOcf>) -> Option<ResourceConfig> {
    let p = format!("{rp}.ocf");
    let o = ctx.lenient(&p, body)?;
    ctx.unknown(&p, &o.unknown, raw::RawOcf::KEYS);
    let agent = ctx.required(&p, "agent", o.agent).and_then(|a| {
        let parts: Vec<&str> = a.split(':').collect();
        let (provider, ty) = match parts.as_slice() {
            [provider, ty] | ["ocf", provider, ty] => (*provider, *ty),
            _ => ("", ""),
        };
        let ok = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if ok(provider) && ok(ty) {
            Some((provider.to_string(), ty.to_string()))
        } else {
            ctx.at_value(&join(&p, "agent"), format!("`{a}`: expected `provider:type` or `ocf:provider:type`, like `heartbeat:IPaddr2`"));
            None
        }
    });
    let params_raw = ctx.field(&p, "params", o.params);
    let params = ctx.params(&join(&p, "params"), params_raw, true);
    let promotable = ctx.field_or(
        &p,
        "promotable",
        o.promotable,
        defaults::RESOURCE_PROMOTABLE,
    );
    let timeout = timeout(ctx, &p, o.timeout, None);
    let name = match ctx.field(&p, "name", o.name) {
        Some(n) => resource_name(ctx, &join(&p, "name"), n)?,
        None => agent.as_ref()?.1.to_lowercase(),
    };
    let (provider, agent_type) = agent?;
    Some(ResourceConfig {
        name,
        kind: ResourceKind::Ocf {
            provider,
            agent_type,
            params,
        },
        timeout,
        promotable,
    })
}

fn systemd(ctx: &mut Ctx, rp: &str, body: Lenient<raw::RawSystemd>) -> Option<ResourceConfig> {
    let p = format!("{rp}.systemd");
    let mut s = ctx.lenient(&p, body)?;
    not_promotable(
        ctx,
        &p,
        &mut s.unknown,
        "systemd units know no promote or demote",
    );
    ctx.unknown(&p, &s.unknown, raw::RawSystemd::KEYS);
    let timeout = timeout(ctx, &p, s.timeout, Some(defaults::SYSTEMD_TIMEOUT));
    let unit = ctx.required(&p, "unit", s.unit).and_then(|u| {
        if u.is_empty() || u.contains('/') || u.chars().any(|c| c.is_whitespace() || c.is_control())
        {
            ctx.at_value(
                &join(&p, "unit"),
                format!("`{u}` is not a systemd unit name"),
            );
            None
        } else if u.contains('.') {
            Some(u)
        } else {
            // As systemctl does: a bare name means a service.
            Some(format!("{u}.service"))
        }
    });
    let name = match ctx.field(&p, "name", s.name) {
        Some(n) => resource_name(ctx, &join(&p, "name"), n)?,
        None => unit.clone()?,
    };
    Some(ResourceConfig {
        name,
        kind: ResourceKind::Systemd { unit: unit? },
        timeout,
        promotable: false,
    })
}

fn resource_name(ctx: &mut Ctx, path: &str, name: String) -> Option<String> {
    if name.is_empty()
        || name.chars().count() > 64
        || name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '/')
    {
        ctx.at_value(
            path,
            format!("`{name}` is not a valid resource name (1 to 64 characters, no spaces or `/`)"),
        );
        return None;
    }
    Some(name)
}

fn timeout(
    ctx: &mut Ctx,
    parent: &str,
    f: Field<RawDuration>,
    default: Option<Duration>,
) -> Option<Duration> {
    if f.is_some() {
        ctx.positive_duration(parent, "timeout", f)
    } else {
        default
    }
}

fn nonempty(
    ctx: &mut Ctx,
    parent: &str,
    key: &str,
    f: Field<String>,
    required: bool,
) -> Option<String> {
    let v = if required {
        ctx.required(parent, key, f)
    } else {
        ctx.field(parent, key, f)
    }?;
    if v.trim().is_empty() {
        ctx.at_value(&join(parent, key), "must not be empty");
        return None;
    }
    Some(v)
}
