//! Hides a password given on the command line (`-d 'password=…'` or a URI
//! with `user:password@`) from `ps` by overwriting it in the process's own
//! argument strings, which is what `/proc/PID/cmdline` shows.
//!
//! glibc passes `argc, argv, envp` to `.init_array` functions; we keep
//! `argv` from there (the standard library only hands out copies).

use std::ffi::{c_char, c_int};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};

static ARGC: AtomicUsize = AtomicUsize::new(0);
static ARGV: AtomicPtr<*mut c_char> = AtomicPtr::new(std::ptr::null_mut());

#[used]
#[link_section = ".init_array"]
static CAPTURE: extern "C" fn(c_int, *mut *mut c_char, *mut *mut c_char) = capture;

extern "C" fn capture(argc: c_int, argv: *mut *mut c_char, _envp: *mut *mut c_char) {
    ARGC.store(usize::try_from(argc).unwrap_or(0), Ordering::Relaxed);
    ARGV.store(argv, Ordering::Relaxed);
}

/// Overwrites `secret` with `*`s in the arguments that can carry it (a
/// conninfo string or a URI: they contain `=` or `://`). Call once the
/// arguments have been parsed (they are not read again).
pub fn hide(secret: &str) {
    let secret = secret.as_bytes();
    let argv = ARGV.load(Ordering::Relaxed);
    if secret.is_empty() || argv.is_null() {
        return;
    }
    for i in 0..ARGC.load(Ordering::Relaxed) {
        // SAFETY: argv holds argc valid pointers to NUL-terminated strings
        // that belong to this process for its whole life.
        let arg = unsafe { *argv.add(i) };
        if arg.is_null() {
            continue;
        }
        let len = unsafe { libc::strlen(arg) };
        let bytes = unsafe { std::slice::from_raw_parts_mut(arg.cast::<u8>(), len) };
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
    fn uri_passwords_are_masked() {
        let mut a = b"postgres://me:p%40ss@db:5432/x?password=no".to_vec();
        super::mask_uri_password(&mut a);
        assert_eq!(a, b"postgres://me:******@db:5432/x?password=no");
        let mut b = b"postgres://me@db/x".to_vec();
        super::mask_uri_password(&mut b);
        assert_eq!(b, b"postgres://me@db/x");
    }
}
