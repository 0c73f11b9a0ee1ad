//! The validation context: where errors are collected with their key path and
//! position, and the field converters every section uses (lenient values, required
//! keys, durations, names, paths, parameter maps), plus the shared name rules.

use super::super::duration::parse_duration;
use super::super::error::ConfigError;
use super::super::locate::Locator;
use super::super::raw::{Field, Lenient, RawDuration, ScalarText, Unknown};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub(super) struct Ctx<'a> {
    file: &'a str,
    loc: Locator,
    errors: Vec<ConfigError>,
}

pub(super) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

/// Name rule for clusters, nodes, groups and fence agents: safe in logs, file names,
/// metrics labels and the `key=value` lines of fence agents.
pub(super) fn check_name(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 32 {
        return Err(format!("`{s}` must be 1 to 32 characters long"));
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "`{s}` contains {c:?}; allowed are letters, digits, `_`, `.` and `-`"
        ));
    }
    Ok(())
}

/// Linux interface names: 1..=15 bytes, no `/`, no whitespace, not `.` or `..`.
pub(super) fn check_ifname(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > 15 || s == "." || s == ".." {
        return Err(format!(
            "`{s}` is not a valid interface name (1 to 15 characters)"
        ));
    }
    if s.chars()
        .any(|c| c == '/' || c == ':' || c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "`{s}` is not a valid interface name (no `/`, `:` or spaces)"
        ));
    }
    Ok(())
}

/// The closest known key, for "did you mean" hints on typos.
fn suggest<'a>(key: &str, known: &[&'a str]) -> Option<&'a str> {
    fn distance(a: &str, b: &str) -> usize {
        let b: Vec<char> = b.chars().collect();
        let mut prev: Vec<usize> = (0..=b.len()).collect();
        for (i, ca) in a.chars().enumerate() {
            let mut cur = vec![i + 1];
            for (j, cb) in b.iter().enumerate() {
                let sub = prev[j] + usize::from(ca != *cb);
                cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
            }
            prev = cur;
        }
        prev[b.len()]
    }
    known
        .iter()
        .map(|k| (distance(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min()
        .map(|(_, k)| k)
}

impl<'a> Ctx<'a> {
    pub(super) fn new(file: &'a str, text: &str) -> Ctx<'a> {
        Ctx {
            file,
            loc: Locator::new(text),
            errors: Vec::new(),
        }
    }

    /// The config file's name as errors show it.
    pub(super) fn file(&self) -> &str {
        self.file
    }

    pub(super) fn into_errors(self) -> Vec<ConfigError> {
        self.errors
    }

    pub(super) fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }

    pub(super) fn push(&mut self, path: &str, pos: Option<(usize, usize)>, message: String) {
        let path = (!path.is_empty()).then_some(path);
        self.errors
            .push(ConfigError::new(self.file, pos, path, &message));
    }

    /// An error about the key itself (missing, unknown, duplicate).
    pub(super) fn at_key(&mut self, path: &str, message: impl Into<String>) {
        let pos = self.loc.key(path);
        self.push(path, pos, message.into());
    }

    /// An error about the value at `path`.
    pub(super) fn at_value(&mut self, path: &str, message: impl Into<String>) {
        let pos = self.loc.value(path);
        self.push(path, pos, message.into());
    }

    pub(super) fn lenient<T>(&mut self, path: &str, v: Lenient<T>) -> Option<T> {
        match v.0 {
            Ok(v) => Some(v),
            Err(e) => {
                self.at_value(path, e);
                None
            }
        }
    }

    pub(super) fn field<T>(&mut self, parent: &str, key: &str, f: Field<T>) -> Option<T> {
        self.lenient(&join(parent, key), f?)
    }

    /// A key that may be left out: its value, else `default` (also when the value is
    /// wrong, which is reported).
    pub(super) fn field_or<T>(&mut self, parent: &str, key: &str, f: Field<T>, default: T) -> T {
        self.field(parent, key, f).unwrap_or(default)
    }

    pub(super) fn required<T>(&mut self, parent: &str, key: &str, f: Field<T>) -> Option<T> {
        match f {
            Some(v) => self.lenient(&join(parent, key), v),
            None => {
                self.at_key(parent, format!("missing required key `{key}`"));
                None
            }
        }
    }

    pub(super) fn unknown(&mut self, parent: &str, unknown: &Unknown, known: &[&str]) {
        for key in unknown.keys() {
            let hint = match suggest(&key.0, known) {
                Some(k) => format!("; did you mean `{k}`?"),
                None => format!("; expected one of: {}", known.join(", ")),
            };
            self.at_key(
                &join(parent, &key.0),
                format!("unknown key `{}`{hint}", key.0),
            );
        }
    }

    pub(super) fn duration(
        &mut self,
        parent: &str,
        key: &str,
        f: Field<RawDuration>,
    ) -> Option<Duration> {
        let path = join(parent, key);
        let parsed = match self.field(parent, key, f)? {
            RawDuration::Text(t) => parse_duration(&t),
            RawDuration::Int(0) => Ok(Duration::ZERO),
            RawDuration::Int(n) if n < 0 => Err(format!("`{n}`: a duration cannot be negative")),
            RawDuration::Int(n) => Err(format!(
                "`{n}` has no unit: write e.g. `{n}s` or `{n}ms` (units: us, ms, s, m, h)"
            )),
        };
        match parsed {
            Ok(d) => Some(d),
            Err(e) => {
                self.at_value(&path, e);
                None
            }
        }
    }

    /// A duration that must be greater than zero.
    pub(super) fn positive_duration(
        &mut self,
        parent: &str,
        key: &str,
        f: Field<RawDuration>,
    ) -> Option<Duration> {
        let d = self.duration(parent, key, f)?;
        if d.is_zero() {
            self.at_value(&join(parent, key), "must be greater than 0");
            return None;
        }
        Some(d)
    }

    /// An optional duration that must be greater than zero; absent or broken, `default`.
    pub(super) fn positive_duration_or(
        &mut self,
        parent: &str,
        key: &str,
        f: Field<RawDuration>,
        default: Duration,
    ) -> Duration {
        if f.is_some() {
            self.positive_duration(parent, key, f)
        } else {
            None
        }
        .unwrap_or(default)
    }

    /// An optional count that must be at least 1; absent or 0 (reported), `default`.
    pub(super) fn count_or(&mut self, parent: &str, key: &str, f: Field<u32>, default: u32) -> u32 {
        match self.field(parent, key, f) {
            Some(0) => {
                self.at_value(&join(parent, key), "must be at least 1");
                default
            }
            Some(n) => n,
            None => default,
        }
    }

    pub(super) fn name(&mut self, parent: &str, key: &str, f: Field<String>) -> Option<String> {
        let name = self.required(parent, key, f)?;
        match check_name(&name) {
            Ok(()) => Some(name),
            Err(e) => {
                self.at_value(&join(parent, key), e);
                None
            }
        }
    }

    pub(super) fn absolute_path(&mut self, path: &str, text: String) -> Option<PathBuf> {
        let p = PathBuf::from(&text);
        if p.is_absolute() {
            Some(p)
        } else {
            self.at_value(path, format!("`{text}` must be an absolute path"));
            None
        }
    }

    pub(super) fn params(
        &mut self,
        path: &str,
        params: Option<BTreeMap<String, Lenient<ScalarText>>>,
        strict_keys: bool,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (k, v) in params.unwrap_or_default() {
            let p = join(path, &k);
            let Some(v) = self.lenient(&p, v) else {
                continue;
            };
            let key_ok = if strict_keys {
                !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            } else {
                !k.is_empty() && !k.contains(['=', '\n', '\r'])
            };
            if !key_ok {
                let allowed = if strict_keys {
                    "letters, digits and `_`"
                } else {
                    "no `=` or newlines"
                };
                self.at_key(&p, format!("invalid parameter name `{k}` ({allowed})"));
            } else if v.0.contains(['\n', '\r', '\0']) {
                // Parameters become `key=value` lines or environment values: a newline
                // would smuggle in another parameter.
                self.at_value(&p, "parameter values must not contain newlines or NUL");
            } else {
                out.insert(k, v.0);
            }
        }
        out
    }
}
