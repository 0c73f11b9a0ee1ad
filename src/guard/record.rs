//! What the worker tells its guard: fixed-size records on a `SOCK_SEQPACKET` pair.
//!
//! Fixed size so the guard can receive into a stack buffer and never allocate; one
//! record per datagram so a record is never torn. The format is private to one
//! `tandemd` binary talking to itself (guard and worker are the same executable), so it
//! carries no version: both sides always agree.

/// Bytes of every record on the wire.
pub const RECORD_LEN: usize = 40;

/// What the guard must assume about one resource group on this node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exposure {
    /// Nothing of the group can run here.
    Idle,
    /// Something may run, with no lease to bound it (a restarted owner still stopping,
    /// or a cluster where takeovers wait for a fence): act when the worker dies.
    Unbounded,
    /// Something may run until the lease ends at this `CLOCK_BOOTTIME` instant (ns):
    /// act when the worker dies, or shortly before then if it has not renewed.
    Leased { until_ns: u64 },
}

/// One message from the worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record {
    /// The worker is up (links bound, control socket listening): tell systemd.
    Ready,
    /// The group's exposure changed (or its lease was renewed). `needs_stop`: it has
    /// resources the guard cannot take down itself (systemd, LSB, OCF): they need their
    /// agent's `stop`, or a self-fence when there is no time for one.
    Group {
        group: u64,
        /// Where the worker writes this group's renewals in the lease page.
        slot: u16,
        exposure: Exposure,
        needs_stop: bool,
    },
    /// An address of the group's `vip` resources, to remove by netlink.
    Vip(VipEntry),
    /// Forget the group's addresses (before they are registered again after a reload).
    ClearVips { group: u64 },
    /// A process group started for one of the group's resources: killed when the guard
    /// acts, forgotten when the group is idle again.
    ProcessGroup { group: u64, pgid: i32 },
    /// That process group is empty now: forget it (its id may be reused).
    ProcessGroupGone { group: u64, pgid: i32 },
}

/// An address of a group's `vip` resources: what the guard keeps, and removes by
/// netlink when it acts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VipEntry {
    pub group: u64,
    pub ifindex: u32,
    pub address: std::net::IpAddr,
    pub prefix: u8,
}

/// Why a received datagram is not a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RecordError {
    #[error("record of {0} bytes, expected {RECORD_LEN}")]
    Length(usize),
    #[error("unknown record tag {0}")]
    Tag(u8),
    #[error("unknown exposure {0}")]
    Exposure(u8),
    #[error("unknown address family {0}")]
    Family(u8),
}

const READY: u8 = 1;
const GROUP: u8 = 2;
const VIP: u8 = 3;
const CLEAR_VIPS: u8 = 4;
const PROCESS_GROUP: u8 = 5;
const PROCESS_GROUP_GONE: u8 = 6;

impl Record {
    /// Layout: tag (1), then fields little-endian from byte 8 on; unused bytes zero.
    pub fn encode(&self) -> [u8; RECORD_LEN] {
        let mut b = [0u8; RECORD_LEN];
        match *self {
            Record::Ready => b[0] = READY,
            Record::Group {
                group,
                slot,
                exposure,
                needs_stop,
            } => {
                b[0] = GROUP;
                b[4..6].copy_from_slice(&slot.to_le_bytes());
                b[8..16].copy_from_slice(&group.to_le_bytes());
                let (kind, until) = match exposure {
                    Exposure::Idle => (0, 0),
                    Exposure::Unbounded => (1, 0),
                    Exposure::Leased { until_ns } => (2, until_ns),
                };
                b[1] = kind;
                b[2] = u8::from(needs_stop);
                b[16..24].copy_from_slice(&until.to_le_bytes());
            }
            Record::Vip(VipEntry {
                group,
                ifindex,
                address,
                prefix,
            }) => {
                b[0] = VIP;
                b[8..16].copy_from_slice(&group.to_le_bytes());
                b[16..20].copy_from_slice(&ifindex.to_le_bytes());
                b[2] = prefix;
                match address {
                    std::net::IpAddr::V4(a) => {
                        b[1] = 4;
                        b[20..24].copy_from_slice(&a.octets());
                    }
                    std::net::IpAddr::V6(a) => {
                        b[1] = 6;
                        b[20..36].copy_from_slice(&a.octets());
                    }
                }
            }
            Record::ClearVips { group } => {
                b[0] = CLEAR_VIPS;
                b[8..16].copy_from_slice(&group.to_le_bytes());
            }
            Record::ProcessGroup { group, pgid } | Record::ProcessGroupGone { group, pgid } => {
                b[0] = if matches!(self, Record::ProcessGroup { .. }) {
                    PROCESS_GROUP
                } else {
                    PROCESS_GROUP_GONE
                };
                b[8..16].copy_from_slice(&group.to_le_bytes());
                b[16..20].copy_from_slice(&pgid.to_le_bytes());
            }
        }
        b
    }

    pub fn decode(b: &[u8]) -> Result<Record, RecordError> {
        let b: &[u8; RECORD_LEN] = b.try_into().map_err(|_| RecordError::Length(b.len()))?;
        let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap_or([0; 4]));
        let group = u64_at(8);
        Ok(match b[0] {
            READY => Record::Ready,
            GROUP => Record::Group {
                group,
                slot: u16::from_le_bytes([b[4], b[5]]),
                exposure: match b[1] {
                    0 => Exposure::Idle,
                    1 => Exposure::Unbounded,
                    2 => Exposure::Leased {
                        until_ns: u64_at(16),
                    },
                    other => return Err(RecordError::Exposure(other)),
                },
                needs_stop: b[2] != 0,
            },
            VIP => {
                let address = match b[1] {
                    4 => std::net::IpAddr::from([b[20], b[21], b[22], b[23]]),
                    6 => {
                        let mut o = [0u8; 16];
                        o.copy_from_slice(&b[20..36]);
                        std::net::IpAddr::from(o)
                    }
                    other => return Err(RecordError::Family(other)),
                };
                Record::Vip(VipEntry {
                    group,
                    ifindex: u32_at(16),
                    address,
                    prefix: b[2],
                })
            }
            CLEAR_VIPS => Record::ClearVips { group },
            PROCESS_GROUP => Record::ProcessGroup {
                group,
                pgid: u32_at(16) as i32,
            },
            PROCESS_GROUP_GONE => Record::ProcessGroupGone {
                group,
                pgid: u32_at(16) as i32,
            },
            other => return Err(RecordError::Tag(other)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_record_round_trips() {
        let records = [
            Record::Ready,
            Record::Group {
                group: 0x0123_4567_89ab_cdef,
                slot: 255,
                exposure: Exposure::Leased {
                    until_ns: u64::MAX - 7,
                },
                needs_stop: true,
            },
            Record::Group {
                group: 1,
                slot: 0,
                exposure: Exposure::Unbounded,
                needs_stop: false,
            },
            Record::Group {
                group: 2,
                slot: 0,
                exposure: Exposure::Idle,
                needs_stop: false,
            },
            Record::Vip(VipEntry {
                group: 3,
                ifindex: 42,
                address: "192.0.2.10".parse().unwrap(),
                prefix: 24,
            }),
            Record::Vip(VipEntry {
                group: 3,
                ifindex: 7,
                address: "2001:db8::10".parse().unwrap(),
                prefix: 64,
            }),
            Record::ClearVips { group: 3 },
            Record::ProcessGroup {
                group: 4,
                pgid: 4242,
            },
            Record::ProcessGroupGone {
                group: 4,
                pgid: 4242,
            },
        ];
        for r in records {
            assert_eq!(Record::decode(&r.encode()), Ok(r), "{r:?}");
        }
    }

    #[test]
    fn garbage_is_an_error_not_a_record() {
        assert_eq!(Record::decode(&[0u8; 3]), Err(RecordError::Length(3)));
        assert_eq!(Record::decode(&[0u8; RECORD_LEN]), Err(RecordError::Tag(0)));
        let mut b = Record::Group {
            group: 1,
            slot: 0,
            exposure: Exposure::Idle,
            needs_stop: false,
        }
        .encode();
        b[1] = 9;
        assert_eq!(Record::decode(&b), Err(RecordError::Exposure(9)));
        let mut v = Record::Vip(VipEntry {
            group: 1,
            ifindex: 1,
            address: "192.0.2.1".parse().unwrap(),
            prefix: 32,
        })
        .encode();
        v[1] = 5;
        assert_eq!(Record::decode(&v), Err(RecordError::Family(5)));
    }
}
