//! Secrets in the config: which parameters count as secrets, and fence agent
//! `params_file`s (`key=value` lines kept out of `tandem.yaml`, read at fence time).
//!
//! A parameter is a secret when a word of its name (split at `_`, `-` and `.`, any
//! case) is one of [`SECRET_WORDS`], unless its last word says it names a file or a
//! program (`passwd_script`, `credentials_file`): those hold a path, not the secret.

use super::trust::secret_file_risk;
use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

/// Words that make a parameter name a secret (see the module doc).
pub const SECRET_WORDS: &[&str] = &[
    "password",
    "passwd",
    "passphrase",
    "pass",
    "pw",
    "secret",
    "token",
    "key",
    "kg",
    "community",
    "credential",
    "credentials",
    "apikey",
];

/// Last words that make a secret-looking name a path to one instead.
pub const PATH_WORDS: &[&str] = &["script", "file", "path"];

/// Largest params file read (they hold a few lines).
pub const MAX_PARAMS_FILE_BYTES: u64 = 64 * 1024;

/// Whether the parameter `name` holds a secret.
pub fn is_secret_param(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let words: Vec<&str> = lower.split(['_', '-', '.']).collect();
    if words.last().is_some_and(|w| PATH_WORDS.contains(w)) {
        return false;
    }
    words.iter().any(|w| SECRET_WORDS.contains(w))
}

/// Reads a fence agent's params file: its owner and mode first (see
/// [`secret_file_risk`]), then its `key=value` lines. The error says what to fix.
pub fn read_params_file(path: &Path) -> Result<BTreeMap<String, String>, String> {
    let shown = path.display();
    let mut file =
        std::fs::File::open(path).map_err(|e| format!("cannot read params file {shown}: {e}"))?;
    // The mode of the file we opened, not of whatever the path names later.
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read params file {shown}: {e}"))?;
    if let Some(risk) = secret_file_risk(&meta) {
        return Err(format!(
            "params file {shown} {risk}: it holds secrets; run `chown root: {shown} && chmod 600 {shown}` (or 640 with group tandem)"
        ));
    }
    let mut text = String::new();
    (&mut file)
        .take(MAX_PARAMS_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read params file {shown}: {e}"))?;
    if text.len() as u64 > MAX_PARAMS_FILE_BYTES {
        return Err(format!(
            "params file {shown} is larger than {MAX_PARAMS_FILE_BYTES} bytes"
        ));
    }
    parse_params(&text).map_err(|e| format!("params file {shown}: {e}"))
}

/// `key=value` lines as fence agents read them on stdin; blank lines and lines
/// starting with `#` are skipped. The value is the rest of the line, spaces included.
pub fn parse_params(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut params = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            return Err(format!("line {}: expected `key=value`", i + 1));
        };
        let key = key.trim_end();
        if key.is_empty() || key.contains(char::is_whitespace) || key.contains('\0') {
            return Err(format!("line {}: invalid parameter name", i + 1));
        }
        if value.contains('\0') {
            return Err(format!("line {}: the value contains NUL", i + 1));
        }
        if params.insert(key.to_string(), value.to_string()).is_some() {
            return Err(format!("line {}: `{key}` is given twice", i + 1));
        }
    }
    Ok(params)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for name in [
            "password",
            "passwd",
            "Password",
            "snmp_priv_passwd",
            "secret_key",
            "api-token",
            "community",
            "kg",
        ] {
            assert!(is_secret_param(name), "{name}");
        }
        for name in [
            "login",
            "ip",
            "passwd_script",
            "credentials_file",
            "identity_file",
            "bypass",
            "lanplus",
            "keyboard",
        ] {
            assert!(!is_secret_param(name), "{name}");
        }
    }

    #[test]
    fn params_lines() {
        let p = parse_params("# BMC\nlogin=admin\n\npassword=a b=c\r\n").expect("valid");
        assert_eq!(p["login"], "admin");
        assert_eq!(p["password"], "a b=c");
        assert!(parse_params("nonsense\n").unwrap_err().contains("line 1"));
        assert!(parse_params("a=1\na=2\n").unwrap_err().contains("twice"));
        assert!(parse_params("bad key=1\n").is_err());
    }
}
