//! Secrets and trust at load: inline secrets in a file others can read, fence agent
//! params files (at load and at fence time), scripts a non-root user could change,
//! the keyed digest, and a reload refused for a file over the size limit.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;
use tandem::config::{self, Config};
use tandem::core::ids::NodeId;
use tandem::core::FenceResult;

mod support;
use support::agents::TempDir;

fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// A two-node config in `dir` (mode 0600) with a fresh key, plus `extra` YAML.
fn config_in(dir: &TempDir, extra: &str) -> PathBuf {
    let key = dir.join("authkey");
    if !key.exists() {
        config::write_key(&key, &config::generate_key(), false).expect("key");
    }
    let cfg = dir.join("tandem.yaml");
    std::fs::write(
        &cfg,
        format!(
            "cluster: {{ name: c, authkey: {} }}\nnodes:\n  - {{ name: a, addresses: [192.0.2.1] }}\n  - {{ name: b, addresses: [192.0.2.2] }}\n{extra}",
            key.display()
        ),
    )
    .expect("write config");
    chmod(&cfg, 0o600);
    cfg
}

fn errors(cfg: &Path) -> String {
    match config::load(cfg) {
        Ok(_) => panic!("{} loaded", cfg.display()),
        Err(e) => e.to_string(),
    }
}

fn loads(cfg: &Path) -> Config {
    config::load(cfg).unwrap_or_else(|e| panic!("{e}"))
}

fn fence_agent(agent: &Path, params_file: Option<&Path>) -> String {
    let file = params_file.map_or(String::new(), |f| format!(", params_file: {}", f.display()));
    format!(
        "fencing:\n  agents:\n    - {{ name: bmc, agent: {}, params: {{ ip: 192.0.2.9, password: hunter2 }}{file} }}\n",
        agent.display()
    )
}

#[test]
fn an_inline_password_in_a_world_readable_file_is_refused_with_the_fix() {
    let dir = TempDir::new("inline");
    let agent = dir.script("fence_x", "#!/bin/sh\nexit 0\n");
    let cfg = config_in(&dir, &fence_agent(&agent, None));
    loads(&cfg);

    chmod(&cfg, 0o644);
    let err = errors(&cfg);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("fencing.agents[0].params.password"), "{err}");
    assert!(err.contains("mode 0644"), "{err}");
    assert!(
        err.contains(&format!("chmod 640 {}", cfg.display())),
        "{err}"
    );
    assert!(err.contains("params_file"), "{err}");
    assert!(
        !err.contains("hunter2"),
        "the secret is never quoted: {err}"
    );
    // Located: the line of the agent that holds it.
    assert!(err.starts_with(&format!("{}:7:", cfg.display())), "{err}");

    // The same through `tandemctl config check`, exit 1.
    let out = Command::new(env!("CARGO_BIN_EXE_tandemctl"))
        .args(["config", "check"])
        .arg(&cfg)
        .output()
        .expect("run tandemctl");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is a secret"));

    // Group-readable by root's group: allowed (the package's 0640 root:tandem is too).
    chmod(&cfg, 0o640);
    loads(&cfg);

    // Without a secret, a world-readable file is fine (as before).
    let plain = fence_agent(&agent, None).replace(", password: hunter2", "");
    let cfg = config_in(&dir, &plain);
    chmod(&cfg, 0o644);
    loads(&cfg);
    // Text that never was a file is not checked.
    config::parse_str(
        &std::fs::read_to_string(&cfg).expect("read"),
        "no-such-file.yaml",
    )
    .expect("parse_str does not judge file modes");
}

#[test]
fn a_params_file_must_be_private_and_must_not_repeat_a_param() {
    let dir = TempDir::new("pfile");
    let agent = dir.script("fence_x", "#!/bin/sh\nexit 0\n");
    let secrets = dir.join("bmc.secrets");
    std::fs::write(&secrets, "# the BMC\nlogin=admin\npassword=s3cret\n").expect("write");
    chmod(&secrets, 0o600);
    let yaml = fence_agent(&agent, Some(&secrets)).replace(", password: hunter2", "");
    let cfg = config_in(&dir, &yaml);
    chmod(&cfg, 0o644);
    let c = loads(&cfg);
    assert_eq!(c.fencing.agents[0].params_file.as_deref(), Some(&*secrets));
    assert!(!c.fencing.agents[0].params.contains_key("password"));

    chmod(&secrets, 0o644);
    let err = errors(&cfg);
    assert!(err.contains("fencing.agents[0].params_file"), "{err}");
    assert!(err.contains("readable by every user (mode 0644)"), "{err}");
    assert!(err.contains("chmod 600"), "{err}");

    chmod(&secrets, 0o600);
    std::fs::write(&secrets, "ip=192.0.2.10\n").expect("write");
    let err = errors(&cfg);
    assert!(err.contains("`ip` is given both"), "{err}");

    std::fs::write(&secrets, "just words\n").expect("write");
    assert!(errors(&cfg).contains("line 1: expected `key=value`"));
}

#[tokio::test]
async fn fencing_reads_the_params_file_each_time() {
    let dir = TempDir::new("pfence");
    let seen = dir.join("stdin");
    let agent = dir.script(
        "fence_rec",
        &format!(
            "#!/bin/sh\ncat >> {0}\ngrep -q '^action=status' {0} && exit 2\nexit 0\n",
            seen.display()
        ),
    );
    let secrets = dir.join("bmc.secrets");
    std::fs::write(&secrets, "password=s3cret\n").expect("write");
    chmod(&secrets, 0o600);
    let yaml = fence_agent(&agent, Some(&secrets)).replace(", password: hunter2", "");
    let cfg = loads(&config_in(&dir, &yaml));
    let agents = &cfg.fencing.agents;

    let result =
        tandem::agents::fence::fence(agents, NodeId(2), "b", Duration::from_secs(20)).await;
    assert_eq!(result, FenceResult::Off);
    let stdin = std::fs::read_to_string(&seen).expect("agent ran");
    assert!(stdin.contains("\nip=192.0.2.9\n"), "{stdin}");
    assert!(stdin.contains("\npassword=s3cret\n"), "{stdin}");

    // Changed without a reload: the new value is used.
    std::fs::write(&secrets, "password=n3w\n").expect("write");
    std::fs::remove_file(&seen).expect("rm");
    let result =
        tandem::agents::fence::fence(agents, NodeId(2), "b", Duration::from_secs(20)).await;
    assert_eq!(result, FenceResult::Off);
    let stdin = std::fs::read_to_string(&seen).expect("agent ran");
    assert!(stdin.contains("\npassword=n3w\n"), "{stdin}");

    // Opened up since: that agent fails with the reason, the agent never runs.
    chmod(&secrets, 0o604);
    std::fs::remove_file(&seen).expect("rm");
    match tandem::agents::fence::fence(agents, NodeId(2), "b", Duration::from_secs(20)).await {
        FenceResult::Failed(why) => assert!(why.contains("readable by every user"), "{why}"),
        FenceResult::Off => panic!("fenced with a params file anyone can read"),
    }
    assert!(!seen.exists());
}

#[test]
fn a_script_others_could_change_is_refused_unless_allowed() {
    let dir = TempDir::new("scripts");
    let open = dir.join("open");
    std::fs::create_dir(&open).expect("mkdir");
    let start = {
        let p = open.join("start.sh");
        std::fs::write(&p, "#!/bin/sh\nexit 0\n").expect("write");
        chmod(&p, 0o755);
        p
    };
    let group = |start: &str| {
        format!(
            "groups:\n  - name: g\n    resources:\n      - exec: {{ name: app, start: \"{start} --now\", stop: /bin/true }}\n"
        )
    };
    let cfg = config_in(&dir, &group(&start.display().to_string()));
    chmod(&open, 0o755);
    loads(&cfg);

    // A directory above it everyone may write to (no sticky bit).
    chmod(&open, 0o777);
    let err = errors(&cfg);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("groups[0].resources[0].exec.start"), "{err}");
    assert!(
        err.contains(&format!("{} is writable by everyone", open.display())),
        "{err}"
    );
    assert!(err.contains("allow_unsafe_scripts"), "{err}");

    // Said explicitly: accepted.
    let allowed = format!(
        "{}security: {{ allow_unsafe_scripts: true }}\n",
        group(&start.display().to_string())
    );
    let cfg_allowed = config_in(&dir, &allowed);
    assert!(loads(&cfg_allowed).security.allow_unsafe_scripts);

    // The script itself group-writable by a group other than root's, a check script,
    // a notify hook, a fence agent: each named by its key.
    chmod(&open, 0o755);
    chmod(&start, 0o777);
    let extra = format!(
        "checks:\n  - {{ name: up, script: \"{0} x\" }}\nnotify: [{0}]\n{1}",
        start.display(),
        fence_agent(&start, None).replace(", password: hunter2", "")
    );
    let cfg = config_in(&dir, &extra);
    let err = errors(&cfg);
    for key in ["checks[0].script", "notify[0]", "fencing.agents[0].agent"] {
        assert!(err.contains(key), "{key}: {err}");
    }
    // Commands found through PATH are not judged (documented).
    let cfg = config_in(&dir, &group("true"));
    loads(&cfg);
}

#[test]
fn a_root_script_in_a_sticky_world_writable_dir_is_accepted() {
    // std::env::temp_dir() is /tmp: root's, mode 1777. TempDir made a 0755 dir in it.
    let meta = std::fs::metadata(std::env::temp_dir()).expect("tmp");
    assert_ne!(meta.permissions().mode() & 0o1000, 0, "/tmp is sticky");
    let dir = TempDir::new("sticky");
    let script = dir.script("start.sh", "#!/bin/sh\nexit 0\n");
    let yaml = format!(
        "groups:\n  - name: g\n    resources:\n      - exec: {{ name: app, start: {0}, stop: {0} }}\n",
        script.display()
    );
    loads(&config_in(&dir, &yaml));
}

#[test]
fn the_digest_is_keyed_equal_for_equal_configs_and_keys() {
    let a = TempDir::new("digest-a");
    let b = TempDir::new("digest-b");
    let ca = loads(&config_in(&a, ""));
    let cb = loads(&config_in(&b, ""));
    // Same text except the key path, and a different key: different digests.
    let same_text = |c: &Config| {
        c.canonical()
            .replace(&*c.cluster.authkey.to_string_lossy(), "K")
    };
    assert_eq!(same_text(&ca), same_text(&cb));
    assert_ne!(ca.digest(), cb.digest());

    // The same config and key read from another file, with a comment: equal digests
    // (what nodes compare).
    let copy = std::fs::read_to_string(a.join("tandem.yaml")).expect("read") + "# copied\n";
    let other = b.join("copy.yaml");
    std::fs::write(&other, copy).expect("write");
    assert_eq!(loads(&other).digest(), ca.digest());

    // Not the unkeyed hash a status reader could compute from a guessed config.
    assert_ne!(
        ca.digest(),
        tandem::core::ids::fnv1a64(ca.canonical().as_bytes())
    );
    assert_eq!(
        ca.cluster_spec().digest,
        ca.digest(),
        "status and wire agree"
    );
}

#[test]
fn a_reload_of_an_oversized_file_is_refused_and_the_running_config_stays() {
    let dir = TempDir::new("reload");
    let cfg = config_in(&dir, "");
    let running = Arc::new(loads(&cfg));
    let (calls, mut received) = tokio::sync::mpsc::channel(4);
    let reloader = tandem::daemon::reload::Reloader::new(cfg.clone(), running, calls);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");

    let f = std::fs::OpenOptions::new()
        .append(true)
        .open(&cfg)
        .expect("open");
    f.set_len(config::defaults::MAX_CONFIG_BYTES + 1)
        .expect("grow");
    let answer = runtime.block_on(reloader.reload("test"));
    assert!(!answer.ok);
    let text = answer.error.unwrap_or_default();
    assert!(text.contains("config not reloaded"), "{text}");
    assert!(text.contains("the running config is unchanged"), "{text}");
    assert!(
        text.contains(&format!(
            "limit is {} bytes",
            config::defaults::MAX_CONFIG_BYTES
        )),
        "{text}"
    );
    assert!(text.len() < 600, "{text}");
    assert!(received.try_recv().is_err(), "nothing went to the core");

    // A valid change does reach the core (so the check above can fail).
    config_in(&dir, "groups:\n  - name: g\n    resources:\n      - exec: { name: x, start: /bin/true, stop: /bin/true }\n");
    let _ = runtime.block_on(async {
        tokio::time::timeout(Duration::from_millis(200), reloader.reload("test")).await
    });
    assert!(received.try_recv().is_ok(), "a valid reload is handed on");
}
