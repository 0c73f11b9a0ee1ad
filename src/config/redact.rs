//! A config file with its secrets taken out, for `tandemctl report` (evidence that is
//! mailed around and attached to tickets).
//!
//! Works on the YAML tree, not on the text: a value is replaced when its key names a
//! secret ([`is_secret_param`], anywhere in the file), and every value of a fence
//! agent's `params` is replaced whatever its name (they are the credentials of a power
//! switch or a BMC). Key names, `authkey` and `params_file` paths stay: they say where
//! secrets live, not what they are; the files they name are never read. Comments are
//! dropped with the rest of the formatting (a comment may hold a secret too). Text that
//! does not parse is not returned at all.

use super::secrets::is_secret_param;
use serde_yaml::Value;
use std::path::Path;

/// What a redacted value reads as.
pub const REDACTED: &str = "<redacted>";

/// The config file at `path`, read with the same size limit as a load, redacted.
pub fn redact_file(path: &Path) -> Result<String, String> {
    let (text, _) = super::read_bounded(path)?;
    redact_text(&text)
}

/// `text` (a config file's YAML) with every secret replaced by [`REDACTED`].
pub fn redact_text(text: &str) -> Result<String, String> {
    let mut value: Value = serde_yaml::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(" at line {}", l.line()))
            .unwrap_or_default();
        // Not the parser's message: it may quote the offending text.
        format!("the config does not parse as YAML{at}, so it is left out (it may hold secrets)")
    })?;
    redact(&mut value, false);
    let body = serde_yaml::to_string(&value)
        .map_err(|e| format!("cannot write the redacted config: {e}"))?;
    Ok(format!(
        "# Redacted by tandem: every value whose key names a secret and every fence agent\n\
         # param is {REDACTED}; comments are left out.\n{body}"
    ))
}

/// Redacts `value` in place; `all` replaces every scalar below (a fence agent's params).
fn redact(value: &mut Value, all: bool) {
    match value {
        Value::Mapping(map) => {
            for (key, inner) in map.iter_mut() {
                let name = key.as_str().unwrap_or("");
                if all || is_secret_param(name) {
                    blank(inner);
                } else {
                    redact(inner, false);
                }
            }
            fence_params(map);
        }
        Value::Sequence(items) => items.iter_mut().for_each(|v| redact(v, all)),
        Value::Tagged(tagged) => redact(&mut tagged.value, all),
        other if all => *other = Value::String(REDACTED.into()),
        _ => {}
    }
}

/// Fence agents are the mappings under `fencing.agents`; their `params` go whole
/// (looked for in every mapping: one that is not the top level has no `fencing`).
fn fence_params(map: &mut serde_yaml::Mapping) {
    let Some(Value::Mapping(fencing)) = map.get_mut("fencing") else {
        return;
    };
    let Some(Value::Sequence(agents)) = fencing.get_mut("agents") else {
        return;
    };
    for agent in agents {
        if let Some(params) = agent.get_mut("params") {
            blank(params);
        }
    }
}

/// Replaces every scalar in `value` (keys of a mapping stay).
fn blank(value: &mut Value) {
    match value {
        Value::Mapping(map) => map.iter_mut().for_each(|(_, v)| blank(v)),
        Value::Sequence(items) => items.iter_mut().for_each(blank),
        Value::Tagged(tagged) => blank(&mut tagged.value),
        Value::Null => {}
        other => *other = Value::String(REDACTED.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = r#"
cluster: { name: prod, authkey: /etc/tandem/authkey }
fencing:
  agents:
    - name: ipmi
      agent: fence_ipmilan
      params: { ip: 192.0.2.9, username: admin, password: Hunter2Planted, lanplus: 1 }
      nodes: [alpha]
    - name: pdu
      agent: fence_apc
      params_file: /etc/tandem/pdu.params
      nodes: [beta]
groups:
  - name: db
    resources:
      - ocf: { name: pg, agent: heartbeat:pgsql, params: { pgdata: /srv/pg, repl_password: S3cretToo } }
"#;

    #[test]
    fn secrets_and_fence_params_go_and_paths_and_names_stay() {
        let out = redact_text(CONFIG).expect("redacts");
        for gone in ["Hunter2Planted", "S3cretToo", "192.0.2.9", "admin"] {
            assert!(!out.contains(gone), "{gone} left in:\n{out}");
        }
        for kept in [
            "/etc/tandem/authkey",
            "/etc/tandem/pdu.params",
            "/srv/pg",
            "fence_ipmilan",
            "password",
            "repl_password",
        ] {
            assert!(out.contains(kept), "{kept} missing from:\n{out}");
        }
        let back: Value = serde_yaml::from_str(&out).expect("still YAML");
        assert_eq!(
            back["fencing"]["agents"][0]["params"]["lanplus"],
            Value::String(REDACTED.into())
        );
    }

    #[test]
    fn text_that_does_not_parse_is_not_returned() {
        let err = redact_text("cluster: [unclosed password: Hunter2Planted").expect_err("refused");
        assert!(!err.contains("Hunter2Planted"), "{err}");
    }
}
