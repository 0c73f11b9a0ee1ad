//! Issue 14, part 2: one witness machine serving two clusters, one small `tandemd` per
//! cluster (what `tandem@.service` runs): each instance has its own config, control
//! socket, state directory and heartbeat port, on the same address. The lab provides the
//! machines (namespaces n1..n5 on one link); the test writes two cluster configs from
//! the lab's own (same heartbeat timing and lab-safe fencing), starts cluster A on n1,
//! n2 and the witness n5 (port 5405), cluster B on n3, n4 and the same n5 (port 5406),
//! and asserts that both clusters form with three votes each and that each witness
//! instance answers for its own cluster only. Needs root (skipped without it, failed
//! under CI), iproute2 and nftables.
#![cfg(feature = "lab")]

mod support;

use serde_json::Value;
use serde_yaml::Value as Yaml;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use support::lab::{runs_on, serial_lab_test, text, POLL};
use tandem::lab::{wait_until, Lab, LabSpec, Ns};

/// The witness machine.
const WITNESS: usize = 5;
const FORM: Duration = Duration::from_secs(60);

struct Cluster {
    name: &'static str,
    port: u16,
    owners: [usize; 2],
}

const CLUSTERS: [Cluster; 2] = [
    Cluster {
        name: "site-a",
        port: 5405,
        owners: [1, 2],
    },
    Cluster {
        name: "site-b",
        port: 5406,
        owners: [3, 4],
    },
];

fn node_entry(lab: &Lab, name: &str, machine: usize, witness: bool) -> Yaml {
    let mut yaml = format!(
        "name: {name}\naddresses: [{}]\ninterfaces: [eth0]\n",
        lab.address(machine, 0)
    );
    yaml.push_str(if witness {
        "witness: true\n"
    } else {
        "priority: 10\n"
    });
    serde_yaml::from_str(&yaml).expect("node entry")
}

/// The lab's config with this cluster's name, key, nodes, port and one no-op group.
fn write_config(lab: &Lab, c: &Cluster, key: &Path) -> PathBuf {
    let base = std::fs::read_to_string(lab.config_path(1)).expect("lab config");
    let mut cfg: Yaml = serde_yaml::from_str(&base).expect("lab config is YAML");
    cfg["cluster"]["name"] = c.name.into();
    cfg["cluster"]["authkey"] = key.to_string_lossy().as_ref().into();
    let nodes: Vec<Yaml> = c
        .owners
        .iter()
        .map(|&m| node_entry(lab, &format!("n{m}"), m, false))
        .chain([node_entry(lab, "witness", WITNESS, true)])
        .collect();
    cfg["nodes"] = Yaml::Sequence(nodes);
    cfg["heartbeat"]["port"] = c.port.into();
    cfg["groups"] = serde_yaml::from_str(&format!(
        "- name: svc\n  prefer: n{}\n  resources:\n    - exec: {{ name: noop, start: /bin/true, stop: /bin/true }}\n",
        c.owners[0]
    ))
    .expect("groups");
    let path = lab.dir().join(format!("{}.yaml", c.name));
    std::fs::write(&path, serde_yaml::to_string(&cfg).expect("yaml")).expect("write config");
    path
}

fn socket(lab: &Lab, cluster: &str, node: &str) -> PathBuf {
    lab.dir().join(format!("{cluster}-{node}.sock"))
}

/// Starts one instance as `tandem@<cluster>.service` would: its own config, socket
/// and state directory.
fn start(lab: &mut Lab, config: &Path, cluster: &str, node: &str, machine: usize) {
    let state = lab.dir().join(format!("state-{cluster}-{node}"));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&state)
        .expect("state dir");
    let tandemd = lab.spec().tandemd.clone();
    let sock = socket(lab, cluster, node);
    let args = [
        tandemd.to_string_lossy().into_owned(),
        "--config".into(),
        config.to_string_lossy().into_owned(),
        "--node".into(),
        node.into(),
        "--socket".into(),
        sock.to_string_lossy().into_owned(),
        "--state-dir".into(),
        state.to_string_lossy().into_owned(),
    ];
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    lab.spawn(Ns::Node(machine), &args)
        .unwrap_or_else(|e| panic!("start {node} of {cluster}: {e}"));
}

fn status(lab: &Lab, sock: &Path) -> Option<Value> {
    let out = Command::new(&lab.spec().tandemctl)
        .arg("--socket")
        .arg(sock)
        .args(["status", "--json"])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

#[test]
fn one_witness_machine_serves_two_clusters_with_one_tandemd_each() {
    let Some(_serial) = serial_lab_test("lab_witness_shared") else {
        return;
    };
    let spec = LabSpec {
        nodes: 5,
        links: 1,
        ..LabSpec::default()
    };
    let mut lab = Lab::build(spec).expect("lab (needs root, iproute2, nftables)");
    let key_b = lab.dir().join("site-b.authkey");
    tandem::config::write_key(&key_b, &tandem::config::generate_key(), false).expect("key");
    let keys = [lab.authkey_path().to_path_buf(), key_b];
    for (c, key) in CLUSTERS.iter().zip(&keys) {
        let config = write_config(&lab, c, key);
        for &m in &c.owners {
            start(&mut lab, &config, c.name, &format!("n{m}"), m);
        }
        start(&mut lab, &config, c.name, "witness", WITNESS);
    }

    for c in &CLUSTERS {
        let owner = format!("n{}", c.owners[0]);
        let sock = socket(&lab, c.name, "witness");
        let mut last = None;
        let formed = wait_until(FORM, POLL, || {
            let s = status(&lab, &sock)?;
            let ok = s["votes_present"] == 3 && runs_on(&s, "svc").as_deref() == Some(&owner);
            last = Some(s.clone());
            ok.then_some(s)
        });
        let s = formed.unwrap_or_else(|| {
            let logs: String = std::fs::read_dir(lab.dir())
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("spawn-"))
                .map(|e| {
                    let body = std::fs::read(e.path()).unwrap_or_default();
                    format!("==== {:?} ====\n{}", e.file_name(), text(&body))
                })
                .collect();
            panic!(
                "{}: no 3 votes with svc on {owner} within {FORM:?}; last: {}\n{logs}",
                c.name,
                last.map(|s| s.to_string()).unwrap_or_else(|| "none".into())
            )
        });
        // The instance answers for its own cluster: its name, its three nodes.
        assert_eq!(s["cluster"], c.name, "{s}");
        let names: Vec<&str> = s["nodes"]
            .as_array()
            .map(|a| a.iter().filter_map(|n| n["name"].as_str()).collect())
            .unwrap_or_default();
        let expected = [
            format!("n{}", c.owners[0]),
            format!("n{}", c.owners[1]),
            "witness".to_string(),
        ];
        assert_eq!(names, expected, "{s}");
        // The owners see the witness online too.
        let o = status(&lab, &socket(&lab, c.name, &owner)).expect("owner answers");
        assert_eq!(o["votes_present"], 3, "{o}");
    }
}
