//! Promotion scores: how a promotable agent says whether this node's replica is fit to
//! be the primary. Agents call `crm_master` or `crm_attribute -p` (through
//! `ocf_promotion_score` in ocf-shellfuncs); tandem points `HA_SBIN_DIR` at its own
//! shims of those commands (`resources/ocf-shims`), which record the score in the file
//! named by `TANDEM_SCORE_FILE`, one file per resource. This module names that file and
//! reads it back as a [`PromotionScore`].
//!
//! The file is written by a shell script that an agent drives, so it is read as
//! untrusted input: bounded in size, every line checked, nothing assumed.
//!
//! ```text
//! format=1
//! state=set          # or `deleted` (crm_master -D), then no score line
//! score=5            # an integer or [+-]INFINITY, as the agent gave it
//! lifetime=reboot    # or forever
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};

/// The environment variable that tells the shims where to record the score.
pub const SCORE_FILE_ENV: &str = "TANDEM_SCORE_FILE";
/// Where tandemd keeps the files unless told otherwise: under its runtime directory, so
/// a reboot forgets them, as Pacemaker forgets `-l reboot` attributes.
pub const DEFAULT_SCORE_DIR: &str = "/run/tandem/scores";
/// The shims the package installs (never over Pacemaker's own binaries).
pub const DEFAULT_SHIM_DIR: &str = "/usr/lib/tandem/ocf-shims";
/// A score file is a few dozen bytes; anything much larger is not ours.
pub const MAX_SCORE_FILE_BYTES: u64 = 4096;
const FORMAT: &str = "1";

/// A promotion score, clamped to Pacemaker's ±INFINITY (1 000 000) as Pacemaker
/// clamps the scores agents give it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Score(i32);

impl Score {
    pub const INFINITY: Score = Score(1_000_000);
    pub const MINUS_INFINITY: Score = Score(-1_000_000);

    pub fn new(value: i64) -> Score {
        let clamped = value.clamp(
            i64::from(Self::MINUS_INFINITY.0),
            i64::from(Self::INFINITY.0),
        );
        // In range of i32 by the clamp above.
        Score(i32::try_from(clamped).unwrap_or(0))
    }

    pub fn value(self) -> i32 {
        self.0
    }

    /// Pacemaker's rule: a negative score forbids promotion.
    pub fn may_promote(self) -> bool {
        self.0 >= 0
    }

    /// `5`, `-INFINITY`, `+INFINITY` (also `INFINITY`); digits beyond i64 saturate, as
    /// `strtoll` does in Pacemaker's `char2score`.
    pub fn parse(text: &str) -> Option<Score> {
        match text {
            "INFINITY" | "+INFINITY" => return Some(Score::INFINITY),
            "-INFINITY" => return Some(Score::MINUS_INFINITY),
            _ => {}
        }
        let (negative, digits) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let magnitude = digits.parse::<i64>().unwrap_or(i64::MAX);
        Some(Score::new(if negative { -magnitude } else { magnitude }))
    }
}

/// How long the agent asked the score to live (`-l`). tandem keeps every score until
/// the node reboots or tandem clears it; the lifetime is kept for the placement code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lifetime {
    Reboot,
    Forever,
}

/// What the agent last said about this node's fitness to be promoted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PromotionScore {
    /// No file: the agent has set no score since tandem cleared it.
    Absent,
    /// `crm_master -v N`.
    Value { score: Score, lifetime: Lifetime },
    /// `crm_master -D`: the agent withdrew its score (it stops, or is not fit).
    Deleted,
}

impl PromotionScore {
    /// May this node be promoted on this score? Only with a score of 0 or more: an
    /// agent that said nothing has not said its data is fit to serve.
    pub fn may_promote(self) -> bool {
        matches!(self, PromotionScore::Value { score, .. } if score.may_promote())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: larger than {MAX_SCORE_FILE_BYTES} bytes, not a score file")]
    TooLarge { path: PathBuf },
    #[error("{path}: line {line}: {why}")]
    Malformed {
        path: PathBuf,
        line: usize,
        why: String,
    },
}

/// The score file of one resource under `dir`. Group names cannot contain `:`, so the
/// first `:` separates the two and no two resources share a file; the name is one path
/// component whatever the names are (a resource may be called `..`).
pub fn file_for(dir: &Path, group: &str, resource: &str) -> PathBuf {
    dir.join(format!("{group}:{resource}.score"))
}

/// Reads the score an agent recorded at `path`; a missing file is [`PromotionScore::Absent`].
pub fn read(path: &Path) -> Result<PromotionScore, ScoreError> {
    let io = |source| ScoreError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(PromotionScore::Absent),
        Err(e) => return Err(io(e)),
    };
    let mut bytes = Vec::new();
    file.take(MAX_SCORE_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > MAX_SCORE_FILE_BYTES {
        return Err(ScoreError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    parse(&bytes).map_err(|(line, why)| ScoreError::Malformed {
        path: path.to_path_buf(),
        line,
        why,
    })
}

/// Removes the score of a resource (tandem forgets it, e.g. before a fresh start).
pub fn clear(path: &Path) -> Result<(), ScoreError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ScoreError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// The fields of a score file, each at most once.
#[derive(Default)]
struct Fields<'a> {
    format: Option<&'a str>,
    state: Option<&'a str>,
    score: Option<&'a str>,
    lifetime: Option<&'a str>,
}

/// Parses the file's bytes; an error is (line number, what is wrong), line 0 for the
/// file as a whole.
fn parse(bytes: &[u8]) -> Result<PromotionScore, (usize, String)> {
    let text = std::str::from_utf8(bytes).map_err(|_| (0, "not UTF-8".to_string()))?;
    let mut f = Fields::default();
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if line.is_empty() {
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| (n, "expected key=value".to_string()))?;
        let slot = match key {
            "format" => &mut f.format,
            "state" => &mut f.state,
            "score" => &mut f.score,
            "lifetime" => &mut f.lifetime,
            // A newer shim may say more; what it says here is still read.
            _ => continue,
        };
        if slot.replace(value).is_some() {
            return Err((n, format!("`{key}` given twice")));
        }
    }
    fields_to_score(&f).map_err(|why| (0, why))
}

fn fields_to_score(f: &Fields) -> Result<PromotionScore, String> {
    if f.format != Some(FORMAT) {
        return Err(format!("format is not {FORMAT}"));
    }
    let lifetime = match f.lifetime {
        None | Some("reboot") => Lifetime::Reboot,
        Some("forever") => Lifetime::Forever,
        Some(other) => return Err(format!("unknown lifetime `{}`", short(other))),
    };
    match (f.state, f.score) {
        (Some("deleted"), None) => Ok(PromotionScore::Deleted),
        (Some("set"), Some(s)) => Score::parse(s)
            .map(|score| PromotionScore::Value { score, lifetime })
            .ok_or_else(|| format!("`{}` is not a score", short(s))),
        (Some("set"), None) => Err("state=set without a score".into()),
        (Some("deleted"), Some(_)) => Err("state=deleted with a score".into()),
        (Some(other), _) => Err(format!("unknown state `{}`", short(other))),
        (None, _) => Err("no state".into()),
    }
}

/// At most 32 characters of a value, for error messages.
fn short(s: &str) -> String {
    s.chars().take(32).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Result<PromotionScore, (usize, String)> {
        parse(text.as_bytes())
    }

    fn value(score: i32, lifetime: Lifetime) -> PromotionScore {
        PromotionScore::Value {
            score: Score(score),
            lifetime,
        }
    }

    #[test]
    fn scores_as_agents_write_them() {
        assert_eq!(Score::parse("5"), Some(Score(5)));
        assert_eq!(Score::parse("+7"), Some(Score(7)));
        assert_eq!(Score::parse("-10"), Some(Score(-10)));
        assert_eq!(Score::parse("INFINITY"), Some(Score::INFINITY));
        assert_eq!(Score::parse("+INFINITY"), Some(Score::INFINITY));
        assert_eq!(Score::parse("-INFINITY"), Some(Score::MINUS_INFINITY));
        assert_eq!(Score::parse("2000000"), Some(Score::INFINITY));
        assert_eq!(
            Score::parse("-99999999999999999999999"),
            Some(Score::MINUS_INFINITY)
        );
        for bad in ["", "-", "+", "5x", " 5", "0x10", "1.5", "infinity", "--1"] {
            assert_eq!(Score::parse(bad), None, "{bad:?}");
        }
        assert!(Score(0).may_promote() && !Score(-1).may_promote());
    }

    #[test]
    fn files_the_shims_write() {
        assert_eq!(
            p("format=1\nstate=set\nscore=5\nlifetime=reboot\n"),
            Ok(value(5, Lifetime::Reboot))
        );
        assert_eq!(
            p("format=1\nstate=set\nscore=-INFINITY\nlifetime=forever\n"),
            Ok(value(-1_000_000, Lifetime::Forever))
        );
        assert_eq!(
            p("format=1\nstate=deleted\nlifetime=reboot\n"),
            Ok(PromotionScore::Deleted)
        );
        // Unknown keys from a newer shim are passed over.
        assert_eq!(
            p("format=1\nstate=set\nscore=1\nnode=n1\n"),
            Ok(value(1, Lifetime::Reboot))
        );
    }

    #[test]
    fn broken_files_are_errors_not_guesses() {
        for (text, line) in [
            ("", 0),
            ("state=set\nscore=1\n", 0),
            ("format=2\nstate=set\nscore=1\n", 0),
            ("format=1\nstate=set\n", 0),
            ("format=1\nstate=set\nscore=high\n", 0),
            ("format=1\nstate=deleted\nscore=1\n", 0),
            ("format=1\nstate=maybe\n", 0),
            ("format=1\nstate=set\nscore=1\nlifetime=week\n", 0),
            ("format=1\nstate=set\nscore=1\nscore=2\n", 4),
            ("format=1\ngarbage\n", 2),
        ] {
            assert_eq!(p(text).err().map(|e| e.0), Some(line), "{text:?}");
        }
        assert!(parse(b"format=1\nstate=set\nscore=\xff\n").is_err());
    }

    #[test]
    fn absent_large_and_cleared_files() {
        let dir = std::env::temp_dir().join(format!("tandem-score-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let f = file_for(&dir, "db", "..");
        assert_eq!(f.parent(), Some(dir.as_path()), "one path component");
        assert_eq!(read(&f).ok(), Some(PromotionScore::Absent));
        std::fs::write(&f, "format=1\nstate=set\nscore=3\n").expect("write");
        assert_eq!(read(&f).ok(), Some(value(3, Lifetime::Reboot)));
        assert!(read(&f).is_ok_and(PromotionScore::may_promote));
        std::fs::write(&f, "x".repeat(5000)).expect("write");
        assert!(matches!(read(&f), Err(ScoreError::TooLarge { .. })));
        clear(&f).expect("clear");
        clear(&f).expect("clearing twice is fine");
        assert_eq!(read(&f).ok(), Some(PromotionScore::Absent));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_a_non_negative_value_may_be_promoted() {
        assert!(!PromotionScore::Absent.may_promote());
        assert!(!PromotionScore::Deleted.may_promote());
        assert!(!value(-1, Lifetime::Reboot).may_promote());
        assert!(value(0, Lifetime::Reboot).may_promote());
    }
}
