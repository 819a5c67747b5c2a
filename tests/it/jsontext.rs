//! A tiny scanner over (already validated) JSON text, for what serde_json's
//! `Value` loses: key order and the exact text of numbers.

use serde_json::Value;

/// One member of a JSON object: its key (raw text and unescaped) and the raw
/// text of its value.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub raw_key: String,
    pub key: String,
    pub value: String,
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while matches!(b.get(i), Some(b' ' | b'\t' | b'\r' | b'\n')) {
        i += 1;
    }
    i
}

fn string_end(b: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    loop {
        match b[j] {
            b'\\' => j += 2,
            b'"' => return j + 1,
            _ => j += 1,
        }
    }
}

fn value_end(b: &[u8], i: usize) -> usize {
    match b[i] {
        b'"' => string_end(b, i),
        b'{' | b'[' => {
            let (mut depth, mut j) = (0, i);
            loop {
                match b[j] {
                    b'"' => {
                        j = string_end(b, j);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return j + 1;
                        }
                    }
                    _ => {}
                }
                j += 1;
            }
        }
        _ => {
            let mut j = i;
            while j < b.len() && !b",}] \t\r\n".contains(&b[j]) {
                j += 1;
            }
            j
        }
    }
}

/// The members of the JSON object `text`, in order.
pub fn entries(text: &str) -> Vec<Entry> {
    serde_json::from_str::<Value>(text)
        .ok()
        .filter(Value::is_object)
        .unwrap_or_else(|| {
            panic!(
                "not a JSON object: {}",
                text.chars().take(300).collect::<String>()
            )
        });
    let b = text.as_bytes();
    let mut i = skip_ws(b, 0) + 1;
    let mut out = Vec::new();
    loop {
        i = skip_ws(b, i);
        if b[i] == b'}' {
            return out;
        }
        let key_end = string_end(b, i);
        let raw_key = text[i..key_end].to_string();
        let key: String = serde_json::from_str(&raw_key).unwrap();
        i = skip_ws(b, key_end) + 1; // ':'
        i = skip_ws(b, i);
        let end = value_end(b, i);
        out.push(Entry {
            raw_key,
            key,
            value: text[i..end].to_string(),
        });
        i = skip_ws(b, end);
        if b[i] == b',' {
            i += 1;
        }
    }
}

/// `text` without whitespace outside strings.
pub fn minify(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'"' {
            let end = string_end(b, i);
            out.push_str(&text[i..end]);
            i = end;
        } else {
            if !matches!(b[i], b' ' | b'\t' | b'\r' | b'\n') {
                out.push(b[i] as char);
            }
            i += 1;
        }
    }
    out
}

/// One line of pgstream's output: its raw text (for key order and number
/// text) and its parsed value. Each test module adds the accessors its
/// format needs.
#[derive(Clone)]
pub struct Line {
    pub raw: String,
    pub v: Value,
}

impl std::fmt::Debug for Line {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Line {
    /// The `op` field (both formats have one).
    pub fn op(&self) -> &str {
        self.v["op"]
            .as_str()
            .unwrap_or_else(|| panic!("no op: {}", self.raw))
    }
}
