//! Recovering line numbers for key paths from the YAML source text.
//!
//! serde_yaml only reports a location for the first error it hits, and its `Value` keeps
//! no positions. So that every semantic error can still point at a line, this module
//! scans the text once and maps key paths (`groups[0].resources[1].exec.start`) to
//! where they appear. It understands block mappings and sequences, single-line flow
//! collections (`{ a: 1 }`, `[x, y]`), comments and block scalars; for anything fancier
//! (anchors, multi-line flow) a lookup just falls back to the nearest known parent, or
//! to no line at all. It never affects what the config means, only where errors point.

use std::collections::HashMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Pos {
    line: usize,
    key_col: usize,
    value_col: Option<usize>,
}

/// Positions of key paths in one YAML text (1-based lines and columns).
#[derive(Debug, Default)]
pub struct Locator {
    positions: HashMap<String, Pos>,
}

#[derive(Debug)]
enum Frame {
    Key { indent: usize, path: String },
    Item { indent: usize, path: String },
}

impl Frame {
    fn path(&self) -> &str {
        match self {
            Frame::Key { path, .. } | Frame::Item { path, .. } => path,
        }
    }
}

fn join_key(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl Locator {
    pub fn new(text: &str) -> Locator {
        let mut loc = Locator::default();
        let mut stack: Vec<Frame> = Vec::new();
        let mut counters: HashMap<String, usize> = HashMap::new();
        // Inside a block scalar (`|` / `>`): lines indented deeper than this are text.
        let mut block_scalar_indent: Option<usize> = None;

        for (lineno, raw_line) in text.lines().enumerate() {
            let line_no = lineno + 1;
            let chars: Vec<char> = strip_comment(raw_line).chars().collect();
            let indent = chars.iter().take_while(|c| **c == ' ').count();
            let blank = chars[indent..].iter().all(|c| c.is_whitespace());
            if let Some(min) = block_scalar_indent {
                if blank || indent > min {
                    continue;
                }
                block_scalar_indent = None;
            }
            if blank {
                continue;
            }
            let rest: String = chars[indent..].iter().collect();
            if rest.starts_with("---") || rest.starts_with("...") || rest.starts_with('%') {
                stack.clear();
                continue;
            }
            let mut pos = indent;
            loop {
                let at = |i: usize| chars.get(i).copied();
                if at(pos) == Some('-') && matches!(at(pos + 1), None | Some(' ')) {
                    while let Some(top) = stack.last() {
                        let pop = match top {
                            Frame::Key { indent, .. } => *indent > pos,
                            Frame::Item { indent, .. } => *indent >= pos,
                        };
                        if !pop {
                            break;
                        }
                        stack.pop();
                    }
                    let parent = stack
                        .last()
                        .map(|f| f.path().to_string())
                        .unwrap_or_default();
                    let counter = counters.entry(parent.clone()).or_insert(0);
                    let path = format!("{parent}[{counter}]");
                    *counter += 1;
                    let mut next = pos + 1;
                    while at(next) == Some(' ') {
                        next += 1;
                    }
                    loc.record(&path, line_no, pos + 1, at(next).map(|_| next + 1));
                    stack.push(Frame::Item { indent: pos, path });
                    pos = next;
                    continue;
                }
                let Some((key, colon)) = block_key(&chars, pos) else {
                    break;
                };
                while stack.last().is_some_and(|top| match top {
                    Frame::Key { indent, .. } | Frame::Item { indent, .. } => *indent >= pos,
                }) {
                    stack.pop();
                }
                let parent = stack
                    .last()
                    .map(|f| f.path().to_string())
                    .unwrap_or_default();
                let path = join_key(&parent, &key);
                let mut value = colon + 1;
                while at(value) == Some(' ') {
                    value += 1;
                }
                match at(value) {
                    None => {
                        loc.record(&path, line_no, pos + 1, None);
                        stack.push(Frame::Key { indent: pos, path });
                    }
                    Some(c) => {
                        loc.record(&path, line_no, pos + 1, Some(value + 1));
                        if c == '{' || c == '[' {
                            let mut flow = Flow {
                                chars: &chars,
                                i: value,
                                line: line_no,
                                loc: &mut loc,
                            };
                            flow.value(&path);
                        } else if c == '|' || c == '>' {
                            block_scalar_indent = Some(pos);
                        }
                    }
                }
                break;
            }
        }
        loc
    }

    fn record(&mut self, path: &str, line: usize, key_col: usize, value_col: Option<usize>) {
        self.positions.entry(path.to_string()).or_insert(Pos {
            line,
            key_col,
            value_col,
        });
    }

    /// Line and column of the key at `path`, or of its nearest located parent.
    pub fn key(&self, path: &str) -> Option<(usize, usize)> {
        self.lookup(path).map(|p| (p.line, p.key_col))
    }

    /// Line and column of the value at `path` (of the key when the value starts on a
    /// later line), or of its nearest located parent.
    pub fn value(&self, path: &str) -> Option<(usize, usize)> {
        self.lookup(path)
            .map(|p| (p.line, p.value_col.unwrap_or(p.key_col)))
    }

    fn lookup(&self, path: &str) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(pos) = self.positions.get(p) {
                return Some(*pos);
            }
            let cut = p.rfind(['.', '['])?;
            p = &p[..cut];
            if p.is_empty() {
                return None;
            }
        }
    }
}

/// The line without its comment (a `#` at the start or after whitespace, outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '\'' => quote = Some(c),
            None if c == '#' && prev_space => return &line[..i],
            None => {}
        }
        prev_space = c == ' ' || c == '\t';
    }
    line
}

/// A block mapping key starting at `pos`: its text and the index of its colon.
fn block_key(chars: &[char], pos: usize) -> Option<(String, usize)> {
    let first = *chars.get(pos)?;
    let colon_ok =
        |i: usize| chars.get(i) == Some(&':') && matches!(chars.get(i + 1), None | Some(' '));
    if first == '"' || first == '\'' {
        let close = (pos + 1..chars.len()).find(|&i| chars[i] == first)?;
        let mut i = close + 1;
        while chars.get(i) == Some(&' ') {
            i += 1;
        }
        return colon_ok(i).then(|| (chars[pos + 1..close].iter().collect(), i));
    }
    if matches!(first, '{' | '[' | '&' | '*' | '!' | '|' | '>') {
        return None;
    }
    let colon = (pos..chars.len()).find(|&i| colon_ok(i))?;
    let key: String = chars[pos..colon].iter().collect();
    Some((key.trim_end().to_string(), colon))
}

/// Scanner for one single-line flow collection.
struct Flow<'a> {
    chars: &'a [char],
    i: usize,
    line: usize,
    loc: &'a mut Locator,
}

impl Flow<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek() == Some(' ') {
            self.i += 1;
        }
    }

    fn value(&mut self, path: &str) {
        self.skip_ws();
        match self.peek() {
            Some('{') => self.map(path),
            Some('[') => self.seq(path),
            _ => self.scalar(),
        }
    }

    fn scalar(&mut self) {
        if let Some(q @ ('"' | '\'')) = self.peek() {
            self.i += 1;
            while let Some(c) = self.peek() {
                self.i += 1;
                if c == '\\' && q == '"' {
                    self.i += 1;
                } else if c == q {
                    return;
                }
            }
            return;
        }
        while let Some(c) = self.peek() {
            if matches!(c, ',' | ']' | '}') {
                return;
            }
            self.i += 1;
        }
    }

    fn map(&mut self, path: &str) {
        self.i += 1;
        loop {
            if self.at_end('}') {
                return;
            }
            let key_start = self.i;
            self.scalar_key();
            let key: String = self.chars[key_start..self.i].iter().collect();
            let key = key.trim().trim_matches(['"', '\'']).to_string();
            self.skip_ws();
            if self.peek() != Some(':') {
                return;
            }
            self.i += 1;
            self.skip_ws();
            let child = join_key(path, &key);
            self.loc
                .record(&child, self.line, key_start + 1, Some(self.i + 1));
            self.value(&child);
            if !self.next_entry('}') {
                return;
            }
        }
    }

    /// A flow mapping key: ends at a `:` followed by a space or a flow indicator.
    fn scalar_key(&mut self) {
        if matches!(self.peek(), Some('"' | '\'')) {
            self.scalar();
            return;
        }
        while let Some(c) = self.peek() {
            let next = self.chars.get(self.i + 1).copied();
            if c == ':' && matches!(next, None | Some(' ' | ',' | '}' | ']')) {
                return;
            }
            if matches!(c, ',' | '}' | ']') {
                return;
            }
            self.i += 1;
        }
    }

    /// Skips blanks; true where the flow collection ends: at `close` (consumed) or at
    /// the end of the text.
    fn at_end(&mut self, close: char) -> bool {
        self.skip_ws();
        match self.peek() {
            None => true,
            Some(c) if c == close => {
                self.i += 1;
                true
            }
            _ => false,
        }
    }

    /// After an entry: skips blanks and the `,` before the next one; false where the
    /// collection ends (at `close`, consumed, or at anything else).
    fn next_entry(&mut self, close: char) -> bool {
        self.skip_ws();
        match self.peek() {
            Some(',') => {
                self.i += 1;
                true
            }
            Some(c) if c == close => {
                self.i += 1;
                false
            }
            _ => false,
        }
    }

    fn seq(&mut self, path: &str) {
        self.i += 1;
        let mut index = 0;
        loop {
            if self.at_end(']') {
                return;
            }
            let child = format!("{path}[{index}]");
            self.loc
                .record(&child, self.line, self.i + 1, Some(self.i + 1));
            self.value(&child);
            index += 1;
            if !self.next_entry(']') {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "\
cluster:
  name: web   # comment: with colon
nodes:
  - name: alpha
    addresses: [192.0.2.1, \"198.51.100.1\"]
  - name: beta
    addresses:
    - 2001:db8::1
groups:
- name: www
  resources:
    - vip: { address: 192.0.2.100/24, interface: eth0 }
    - exec:
        name: app
        start: |
          run: this
          not: a key
        stop: /bin/true
heartbeat:
  port: 5405
";

    #[test]
    fn finds_block_keys() {
        let loc = Locator::new(TEXT);
        assert_eq!(loc.key("cluster.name"), Some((2, 3)));
        assert_eq!(loc.value("cluster.name"), Some((2, 9)));
        assert_eq!(loc.key("nodes[1].name"), Some((6, 5)));
        assert_eq!(loc.key("heartbeat.port"), Some((20, 3)));
    }

    #[test]
    fn finds_items_and_flow() {
        let loc = Locator::new(TEXT);
        assert_eq!(loc.key("nodes[0].addresses[1]"), Some((5, 28)));
        assert_eq!(loc.key("nodes[1].addresses[0]"), Some((8, 5)));
        assert_eq!(
            loc.key("groups[0].resources[0].vip.interface"),
            Some((12, 39))
        );
        assert_eq!(loc.key("groups[0].resources[1].exec.stop"), Some((18, 9)));
    }

    #[test]
    fn skips_block_scalars_and_falls_back_to_parent() {
        let loc = Locator::new(TEXT);
        assert_eq!(
            loc.key("groups[0].resources[1].exec.start.run"),
            Some((15, 9))
        );
        assert_eq!(
            loc.key("groups[0].resources[1].exec.timeout"),
            Some((13, 7))
        );
        assert_eq!(loc.key("metrics.listen"), None);
    }
}
