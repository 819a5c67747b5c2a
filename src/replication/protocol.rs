//! Sans-IO parts of the streaming replication protocol: framing of backend
//! messages, the CopyBoth payloads (`w` XLogData, `k` keepalive) and the
//! standby status update we send back.

use std::io;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use postgres_protocol::message::backend::Header;

use crate::event::Lsn;

/// One backend message, split off the read buffer without copying.
#[derive(Debug)]
pub(crate) struct Frame {
    pub tag: u8,
    /// The body, without tag and length.
    pub body: Bytes,
}

/// Splits the next complete message off `buf`; `Ok(None)` when more bytes
/// are needed (an expected condition, not an error).
pub(crate) fn next_frame(buf: &mut BytesMut) -> io::Result<Option<Frame>> {
    let Some(header) = Header::parse(buf)? else {
        return Ok(None);
    };
    // Header::parse has already rejected lengths below 4.
    let len = usize::try_from(header.len()).map_err(|_| invalid("negative message length"))?;
    let total = len + 1;
    if buf.len() < total {
        buf.reserve(total - buf.len());
        return Ok(None);
    }
    let mut frame = buf.split_to(total);
    frame.advance(5);
    Ok(Some(Frame {
        tag: header.tag(),
        body: frame.freeze(),
    }))
}

/// A CopyData payload from the walsender.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CopyMessage {
    /// `w`: a chunk of plugin output starting at `wal_start`.
    XLogData {
        wal_start: Lsn,
        wal_end: Lsn,
        data: Bytes,
    },
    /// `k`: the server's position; `reply` asks for a status update now.
    Keepalive { wal_end: Lsn, reply: bool },
}

impl CopyMessage {
    /// Parses a CopyData payload.
    pub(crate) fn parse(mut body: Bytes) -> io::Result<CopyMessage> {
        if body.is_empty() {
            return Err(invalid("empty CopyData message"));
        }
        match body.get_u8() {
            b'w' => {
                if body.len() < 24 {
                    return Err(invalid("truncated XLogData message"));
                }
                let wal_start = Lsn(body.get_u64());
                let wal_end = Lsn(body.get_u64());
                let _send_time = body.get_i64();
                Ok(CopyMessage::XLogData {
                    wal_start,
                    wal_end,
                    data: body,
                })
            }
            b'k' => {
                if body.len() < 17 {
                    return Err(invalid("truncated keepalive message"));
                }
                let wal_end = Lsn(body.get_u64());
                let _send_time = body.get_i64();
                let reply = body.get_u8() == 1;
                Ok(CopyMessage::Keepalive { wal_end, reply })
            }
            other => Err(invalid(&format!(
                "unknown CopyData message type {:?}",
                other as char
            ))),
        }
    }
}

/// Encodes a standby status update (`r`) wrapped in CopyData. `write` and
/// `flush` are both what we have written and flushed: pgstream has no
/// separate apply step.
pub(crate) fn standby_status_update(lsn: Lsn, now: i64, reply: bool, out: &mut BytesMut) {
    out.put_u8(b'd');
    out.put_i32(4 + 1 + 8 * 4 + 1);
    out.put_u8(b'r');
    out.put_u64(lsn.0); // written
    out.put_u64(lsn.0); // flushed
    out.put_u64(lsn.0); // applied
    out.put_i64(now);
    out.put_u8(u8::from(reply));
}

/// Microseconds since 2000-01-01 UTC, the protocol's clock.
pub(crate) fn pg_now() -> i64 {
    const UNIX_TO_PG_EPOCH_SECS: i64 = 946_684_800;
    let since_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let micros = i64::try_from(since_unix.as_micros()).unwrap_or(i64::MAX);
    micros - UNIX_TO_PG_EPOCH_SECS * 1_000_000
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut v = vec![tag];
        v.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn frames_split_and_wait_for_more() {
        let mut bytes = frame(b'd', b"kabc");
        bytes.extend(frame(b'c', b""));
        let mut buf = BytesMut::new();
        for (i, b) in bytes.iter().enumerate() {
            buf.put_u8(*b);
            if i < 8 {
                assert!(next_frame(&mut buf).unwrap().is_none());
            }
        }
        let f = next_frame(&mut buf).unwrap().unwrap();
        assert_eq!((f.tag, &f.body[..]), (b'd', &b"kabc"[..]));
        let f = next_frame(&mut buf).unwrap().unwrap();
        assert_eq!((f.tag, f.body.len()), (b'c', 0));
        assert!(next_frame(&mut buf).unwrap().is_none());
    }

    #[test]
    fn bad_length_is_an_error() {
        let mut buf = BytesMut::from(&[b'd', 0, 0, 0, 2][..]);
        assert!(next_frame(&mut buf).is_err());
        let mut buf = BytesMut::from(&[b'd', 0xff, 0xff, 0xff, 0xff][..]);
        assert!(next_frame(&mut buf).is_err());
    }

    #[test]
    fn parses_xlogdata_and_keepalive() {
        let mut w = vec![b'w'];
        w.extend(1u64.to_be_bytes());
        w.extend(2u64.to_be_bytes());
        w.extend(3i64.to_be_bytes());
        w.extend(b"BODY");
        assert_eq!(
            CopyMessage::parse(Bytes::from(w)).unwrap(),
            CopyMessage::XLogData {
                wal_start: Lsn(1),
                wal_end: Lsn(2),
                data: Bytes::from_static(b"BODY")
            }
        );
        let mut k = vec![b'k'];
        k.extend(0x1_0000_0010u64.to_be_bytes());
        k.extend(0i64.to_be_bytes());
        k.push(1);
        assert_eq!(
            CopyMessage::parse(Bytes::from(k.clone())).unwrap(),
            CopyMessage::Keepalive {
                wal_end: Lsn(0x1_0000_0010),
                reply: true
            }
        );
        for n in 0..k.len() {
            assert!(CopyMessage::parse(Bytes::copy_from_slice(&k[..n])).is_err());
        }
        assert!(CopyMessage::parse(Bytes::from_static(b"x")).is_err());
    }

    #[test]
    fn status_update_layout() {
        let mut out = BytesMut::new();
        standby_status_update(Lsn(0xAB), 7, true, &mut out);
        assert_eq!(out.len(), 1 + 4 + 34);
        assert_eq!(&out[..6], &[b'd', 0, 0, 0, 38, b'r']);
        assert_eq!(&out[6..14], &0xABu64.to_be_bytes());
        assert_eq!(&out[14..22], &0xABu64.to_be_bytes());
        assert_eq!(out[out.len() - 1], 1);
    }
}
