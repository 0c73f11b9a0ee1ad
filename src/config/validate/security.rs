//! The `security` section and the two checks it governs, run on a config that
//! otherwise converted: inline secrets in a file others can read (always refused),
//! and scripts a non-root user could change (refused unless
//! `security.allow_unsafe_scripts` is true). The rules of who "could change" or "can
//! read" a file are in [`crate::config::trust`].

use super::super::defaults;
use super::super::model::{
    CheckConfig, CheckProbe, FencingConfig, GroupConfig, ResourceKind, SecurityConfig, SelfFence,
};
use super::super::raw::{self, Field};
use super::super::secrets::is_secret_param;
use super::super::trust::{read_exposure, script_risk, TANDEM_GROUP};
use super::ctx::Ctx;
use std::path::{Path, PathBuf};

pub(super) fn section(ctx: &mut Ctx, raw: Field<raw::RawSecurity>) -> SecurityConfig {
    let mut s = SecurityConfig {
        allow_unsafe_scripts: defaults::ALLOW_UNSAFE_SCRIPTS,
    };
    let Some(raw) = raw.and_then(|r| ctx.lenient("security", r)) else {
        return s;
    };
    ctx.unknown("security", &raw.unknown, raw::RawSecurity::KEYS);
    if let Some(allow) = ctx.field("security", "allow_unsafe_scripts", raw.allow_unsafe_scripts) {
        s.allow_unsafe_scripts = allow;
    }
    s
}

/// Every secret parameter (fence agent and OCF params), by key path, when the file
/// they are in can be read by others. Without `facts` (text not read from a file)
/// there is nothing to check.
pub(super) fn inline_secrets(
    ctx: &mut Ctx,
    facts: Option<&std::fs::Metadata>,
    fencing: &FencingConfig,
    groups: &[GroupConfig],
) {
    let Some(why) = facts.and_then(read_exposure) else {
        return;
    };
    let file = ctx.file().to_string();
    let fix = format!("run `chgrp {TANDEM_GROUP} {file} && chmod 640 {file}` (or 600)");
    for (i, a) in fencing.agents.iter().enumerate() {
        for k in a.params.keys().filter(|k| is_secret_param(k)) {
            ctx.at_value(
                &format!("fencing.agents[{i}].params.{k}"),
                format!("`{k}` is a secret and {file} {why}: {fix}, or move it to a `params_file` (mode 0600)"),
            );
        }
    }
    for (g, group) in groups.iter().enumerate() {
        for (r, res) in group.resources.iter().enumerate() {
            let ResourceKind::Ocf { params, .. } = &res.kind else {
                continue;
            };
            for k in params.keys().filter(|k| is_secret_param(k)) {
                ctx.at_value(
                    &format!("groups[{g}].resources[{r}].ocf.params.{k}"),
                    format!("`{k}` is a secret and {file} {why}: {fix}"),
                );
            }
        }
    }
}

/// The parts of a config that name programs tandem runs as root.
pub(super) struct Scripts<'a> {
    pub groups: &'a [GroupConfig],
    pub checks: &'a [CheckConfig],
    pub fencing: &'a FencingConfig,
    pub notify: &'a [PathBuf],
}

/// Every program a non-root user could change, by key path.
pub(super) fn scripts(ctx: &mut Ctx, s: &Scripts) {
    for (key, path) in programs(s) {
        if let Some(risk) = script_risk(&path) {
            ctx.at_value(
                &key,
                format!(
                    "`{}` runs as root, but {risk}, so a non-root user could change it: make it and every directory above it root's and not writable by group or others (`chown root: PATH; chmod go-w PATH`), or set `security: {{ allow_unsafe_scripts: true }}`",
                    path.display()
                ),
            );
        }
    }
}

/// (key path, program) of every program the config names: exec commands and check
/// scripts by their first word when it is an absolute path (they are `sh -c` strings),
/// lsb scripts, notify hooks, fence agents and a self-fence command.
fn programs(s: &Scripts) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut command = |key: String, cmd: &str| {
        if let Some(first) = cmd.split_whitespace().next().filter(|w| w.starts_with('/')) {
            out.push((key, PathBuf::from(first)));
        }
    };
    for (g, group) in s.groups.iter().enumerate() {
        for (r, res) in group.resources.iter().enumerate() {
            let rp = format!("groups[{g}].resources[{r}]");
            if let ResourceKind::Exec {
                start,
                stop,
                monitor,
                promote,
                demote,
            } = &res.kind
            {
                command(format!("{rp}.exec.start"), start);
                command(format!("{rp}.exec.stop"), stop);
                let optional = [
                    ("monitor", monitor),
                    ("promote", promote),
                    ("demote", demote),
                ];
                for (key, cmd) in optional {
                    if let Some(c) = cmd {
                        command(format!("{rp}.exec.{key}"), c);
                    }
                }
            }
        }
    }
    for (c, check) in s.checks.iter().enumerate() {
        if let CheckProbe::Script(cmd) = &check.probe {
            command(format!("checks[{c}].script"), cmd);
        }
    }
    out.extend(fixed_paths(s));
    out
}

/// The programs named by a path, not a command line.
fn fixed_paths(s: &Scripts) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for (g, group) in s.groups.iter().enumerate() {
        for (r, res) in group.resources.iter().enumerate() {
            if let ResourceKind::Lsb { script } = &res.kind {
                out.push((
                    format!("groups[{g}].resources[{r}].lsb.name"),
                    script.clone(),
                ));
            }
        }
        for (j, hook) in group.notify.iter().enumerate() {
            out.push((format!("groups[{g}].notify[{j}]"), hook.clone()));
        }
    }
    for (j, hook) in s.notify.iter().enumerate() {
        out.push((format!("notify[{j}]"), hook.clone()));
    }
    for (i, a) in s.fencing.agents.iter().enumerate() {
        out.push((format!("fencing.agents[{i}].agent"), a.agent.clone()));
    }
    if let SelfFence::Command(cmd) = &s.fencing.self_fence {
        out.push(("fencing.self_fence".into(), Path::new(cmd).to_path_buf()));
    }
    out
}
