//! Issue 12: the watchdog behind the lease guard, with a FIFO standing in for
//! /dev/watchdog (the lab has no watchdog device). Every guard feeds it while it runs and
//! writes the magic `V` when it stops cleanly; and because a silent owner's machine may
//! only be reset when its watchdog fires, a peer waits deadtime + timeout before it
//! takes the group over. Real daemons in the netns lab; needs root,
//! iproute2 and nftables.

mod support;

use std::io::Read;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tandem::lab::chaos::{analyze, OBSERVE_PERIOD};
use tandem::lab::observe::client::{ClientObserver, Probe};
use tandem::lab::topology::{eth0_mac, group_yaml};
use tandem::lab::{wait_until, Lab, LabSpec, Ns};

#[derive(Default)]
struct Fed {
    feeds: AtomicUsize,
    magic: AtomicUsize,
}

/// A FIFO and a thread that counts what the guards write into it.
fn fake_watchdog(dir: &std::path::Path) -> (std::path::PathBuf, Arc<Fed>) {
    let path = dir.join("watchdog");
    nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let fed = Arc::new(Fed::default());
    let (p, f) = (path.clone(), Arc::clone(&fed));
    std::thread::spawn(move || {
        // Opened read-write so the FIFO never reports EOF between guards.
        let Ok(mut fifo) = std::fs::OpenOptions::new().read(true).write(true).open(&p) else {
            return;
        };
        let mut buf = [0u8; 64];
        while let Ok(n) = fifo.read(&mut buf) {
            for b in &buf[..n] {
                match b {
                    b'V' => f.magic.fetch_add(1, Ordering::Relaxed),
                    _ => f.feeds.fetch_add(1, Ordering::Relaxed),
                };
            }
        }
    });
    (path, fed)
}

#[test]
fn guards_feed_the_watchdog_peers_wait_for_it_and_a_clean_stop_disarms_it() {
    if !support::lab::lab_or_skip("lab_watchdog") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("tandem-wd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("dir");
    let (device, fed) = fake_watchdog(&dir);
    let timeout = Duration::from_secs(3);
    let spec = LabSpec {
        nodes: 3,
        witnesses: vec![3],
        extra_yaml: format!(
            "{}watchdog:\n  device: {}\n  timeout: 3s\n",
            group_yaml(),
            device.display()
        ),
        ..LabSpec::default()
    };
    let (interval, deadtime) = (spec.interval, spec.deadtime);
    let mut lab = Lab::build(spec).expect("lab");
    lab.start_all().expect("start");
    let n1 = eth0_mac(&lab, Ns::Node(1)).expect("mac");
    let n2 = eth0_mac(&lab, Ns::Node(2)).expect("mac");
    let observer = ClientObserver::start(
        &lab,
        Probe::WhoHas {
            every: OBSERVE_PERIOD,
        },
    )
    .expect("observer");
    let served_by = |mac: [u8; 6]| {
        observer
            .last_arp_reply(Duration::from_millis(100))
            .is_some_and(|r| r.seen.mac() == mac)
    };
    assert!(
        wait_until(Duration::from_secs(30), Duration::from_millis(50), || {
            served_by(n1).then_some(())
        })
        .is_some(),
        "n1 never served\n{}",
        lab.logs(1)
    );
    // Three guards, each every timeout/3 (1 s): 4 s bring about 12 feeds; ask for half.
    let before = fed.feeds.load(Ordering::Relaxed);
    std::thread::sleep(Duration::from_secs(4));
    assert!(
        fed.feeds.load(Ordering::Relaxed) >= before + 6,
        "the guards do not feed the watchdog"
    );
    assert_eq!(fed.magic.load(Ordering::Relaxed), 0);

    // n1 goes silent (links cut) and its worker dies: its guard drops the VIP at once,
    // yet n2 must wait for the watchdog rule (a machine whose guard died too would be
    // reset only by then). Without the cut, n1's restarted worker would announce the
    // release and n2 could take over sooner, rightly.
    let at = Instant::now();
    lab.links_down(1).expect("cut n1");
    lab.kill_worker(1).expect("kill worker");
    let took = wait_until(Duration::from_secs(30), Duration::from_millis(5), || {
        served_by(n2).then(|| at.elapsed())
    })
    .unwrap_or_else(|| panic!("n2 never served\n{}\n{}", lab.logs(1), lab.logs(2)));
    let summary = analyze(&observer.finish(), &Default::default());
    assert_eq!(summary.dual_owner_rounds, 0, "{summary:?}");
    // A lower bound holds on any machine, however loaded: n2 cannot be early. n1 was
    // last heard a moment before the fault, so allow one interval.
    assert!(
        took + interval >= deadtime + timeout,
        "n2 took over after {took:?}, before deadtime + the watchdog timeout"
    );
    assert!(
        took <= deadtime + timeout + Duration::from_secs(3),
        "n2 took {took:?}"
    );

    lab.links_up(1).expect("heal n1");
    for node in 1..=3 {
        lab.terminate(node).expect("clean stop");
    }
    let disarmed = wait_until(Duration::from_secs(10), Duration::from_millis(50), || {
        (fed.magic.load(Ordering::Relaxed) == 3).then_some(())
    });
    assert!(
        disarmed.is_some(),
        "every guard writes V when it stops cleanly ({} seen)",
        fed.magic.load(Ordering::Relaxed)
    );
    drop(lab);
    let _ = std::fs::remove_dir_all(&dir);
}
