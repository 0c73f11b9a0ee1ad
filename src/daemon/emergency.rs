//! `tandemd --emergency-stop`: the lease guard's way of running agent stops.
//!
//! The guard itself cannot run an OCF agent or `systemctl stop` (it has no runtime and
//! must not allocate); when its worker is gone and a group has such resources, it
//! starts `tandemd` again in this mode, bounded by the lease, and self-fences if this
//! does not finish in time. The groups are stopped one after the other, each in
//! reverse resource order, exactly like the core's own stop.

use crate::agents::{self, OpContext};
use crate::config::Config;
use crate::core::{OpKind, OpResult};

/// Stops every resource of the groups whose ids (lowercase hex, comma-separated) are in
/// `ids`. True when every stop succeeded (or found the resource not running).
pub fn stop_groups(config: &Config, ids: &str) -> bool {
    let wanted: Vec<u64> = ids
        .split(',')
        .filter_map(|s| u64::from_str_radix(s.trim(), 16).ok())
        .collect();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!("emergency stop: cannot start a runtime: {e}");
            return false;
        }
    };
    runtime.block_on(async {
        let mut all_stopped = true;
        for group in config
            .groups
            .iter()
            .filter(|g| wanted.contains(&u64::from(g.id.0)))
        {
            for resource in group.resources.iter().rev() {
                let ctx = OpContext {
                    group: &group.name,
                    resource,
                    kind: OpKind::Stop,
                    timeout: resource
                        .timeout
                        .unwrap_or_else(|| agents::default_timeout(&resource.kind)),
                    interval: std::time::Duration::ZERO,
                    // The guard acts without the core: no decision, no term to give.
                    token: None,
                };
                let result = agents::run_op(&ctx).await;
                let ok = matches!(result, OpResult::Ok | OpResult::NotRunning);
                if ok {
                    tracing::warn!(resource = resource.name.as_str(), "emergency stop: stopped");
                } else {
                    tracing::error!(
                        resource = resource.name.as_str(),
                        "emergency stop failed: {result:?}"
                    );
                }
                all_stopped &= ok;
            }
        }
        all_stopped
    })
}
