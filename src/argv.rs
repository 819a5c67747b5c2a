//! Hides a password given on the command line (`-d 'password=…'` or a URI
//! with `user:password@`) from `ps` by overwriting it in the process's own
//! argument strings, which is what `/proc/PID/cmdline` shows.
//!
//! The kernel says where those strings are: `arg_start` and `arg_end` in
//! `/proc/self/stat` (Linux 3.5+). That holds under any C library; glibc's
//! habit of passing `argv` to `.init_array` functions does not (musl does
//! not, and the static binary is built with musl).

/// Overwrites `secret` with `*`s in the arguments that can carry it (a
/// conninfo string or a URI: they contain `=` or `://`). Call once the
/// arguments have been parsed (they are not read again).
pub fn hide(secret: &str) {
    let secret = secret.as_bytes();
    let Some((start, end)) = arg_area().filter(|_| !secret.is_empty()) else {
        return;
    };
    // SAFETY: [arg_start, arg_end) is this process's own argument block on
    // its initial stack: mapped and writable for the process's whole life.
    // Nothing in Rust holds a reference into it (the standard library
    // copies the arguments out when asked), and this runs while the
    // process has one thread.
    let area = unsafe { std::slice::from_raw_parts_mut(start as *mut u8, end - start) };
    for bytes in area.split_mut(|&b| b == 0) {
        let carries = bytes.contains(&b'=') || bytes.windows(3).any(|w| w == b"://");
        if !carries {
            continue;
        }
        mask_uri_password(bytes);
        let mut at = 0;
        while let Some(pos) = bytes[at..].windows(secret.len()).position(|w| w == secret) {
            let start = at + pos;
            bytes[start..start + secret.len()].fill(b'*');
            at = start + secret.len();
        }
    }
}

/// `arg_start` and `arg_end` of `/proc/self/stat`.
fn arg_area() -> Option<(usize, usize)> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    parse_arg_area(&stat)
}

/// The 48th and 49th fields of a `stat` line (proc(5)), counted after the
/// command name, which may hold spaces and parentheses.
fn parse_arg_area(stat: &str) -> Option<(usize, usize)> {
    let after_comm = stat.get(stat.rfind(')')? + 1..)?;
    let mut fields = after_comm.split_ascii_whitespace().skip(48 - 3);
    let start: usize = fields.next()?.parse().ok()?;
    let end: usize = fields.next()?.parse().ok()?;
    (start != 0 && start < end).then_some((start, end))
}

/// Masks the `password` of `scheme://user:password@host…`, however it is
/// percent-encoded.
fn mask_uri_password(arg: &mut [u8]) {
    let Some(scheme_end) = arg.windows(3).position(|w| w == b"://").map(|p| p + 3) else {
        return;
    };
    let authority_end = arg[scheme_end..]
        .iter()
        .position(|&c| c == b'/' || c == b'?')
        .map_or(arg.len(), |p| scheme_end + p);
    let authority = &mut arg[scheme_end..authority_end];
    if let Some(at) = authority.iter().rposition(|&c| c == b'@') {
        if let Some(colon) = authority[..at].iter().position(|&c| c == b':') {
            authority[colon + 1..at].fill(b'*');
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn arg_area_is_read_past_an_odd_command_name() {
        let rest: Vec<String> = (3..=52).map(|n| n.to_string()).collect();
        let stat = format!("4242 (a) b (c) {}\n", rest.join(" "));
        assert_eq!(super::parse_arg_area(&stat), Some((48, 49)));
        assert_eq!(super::parse_arg_area("4242 (x) S 1"), None);
        // This process's own: its first argument is the test binary.
        let (start, end) = super::arg_area().unwrap();
        assert!(end - start >= std::env::args().next().unwrap().len());
    }

    #[test]
    fn uri_passwords_are_masked() {
        let mut a = b"postgres://me:p%40ss@db:5432/x?password=no".to_vec();
        super::mask_uri_password(&mut a);
        assert_eq!(a, b"postgres://me:******@db:5432/x?password=no");
        let mut b = b"postgres://me@db/x".to_vec();
        super::mask_uri_password(&mut b);
        assert_eq!(b, b"postgres://me@db/x");
    }
}
