use std::fmt::Write;

use super::*;
use crate::event::Datum;

/// Builds a message byte by byte.
struct Msg(Vec<u8>);

macro_rules! put {
        ($($name:ident: $t:ty),*) => {$(
            fn $name(mut self, v: $t) -> Self {
                self.0.extend_from_slice(&v.to_be_bytes());
                self
            }
        )*};
    }

/// A tuple value: null, unchanged TOAST, text.
enum V {
    N,
    U,
    T(&'static str),
}
use V::*;

impl Msg {
    put!(u8: u8, i16: i16, u32: u32, i32: i32, u64: u64);

    fn new(tag: u8) -> Self {
        Msg(vec![tag])
    }

    fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }

    fn s(self, s: &str) -> Self {
        self.raw(s.as_bytes()).u8(0)
    }

    /// Int32 length and bytes.
    fn data(self, b: &[u8]) -> Self {
        self.i32(b.len() as i32).raw(b)
    }

    /// The xid that messages carry inside a stream block.
    fn xid(self, stream: Option<u32>) -> Self {
        match stream {
            Some(x) => self.u32(x),
            None => self,
        }
    }

    /// A tuple kind byte (`N`, `K`, `O`) and TupleData.
    fn tuple(self, kind: u8, vals: &[V]) -> Self {
        let m = self.u8(kind).i16(vals.len() as i16);
        vals.iter().fold(m, |m, v| match v {
            N => m.u8(b'n'),
            U => m.u8(b'u'),
            T(s) => m.u8(b't').data(s.as_bytes()),
        })
    }
}

/// Columns of `public.t`, relation 1.
const T_COLS: &[(u8, &str, u32)] = &[(1, "id", 23), (0, "a", 25), (0, "b", 25)];

/// A Relation message; columns are (flags, name, type oid).
fn rel(stream: Option<u32>, relid: u32, ident: u8, cols: &[(u8, &str, u32)]) -> Vec<u8> {
    let m = Msg::new(b'R').xid(stream).u32(relid).s("public");
    let m = m.s(&format!("r{relid}")).u8(ident).i16(cols.len() as i16);
    let m = cols
        .iter()
        .fold(m, |m, (f, n, oid)| m.u8(*f).s(n).u32(*oid).i32(-1));
    m.0
}

fn begin(xid: u32) -> Vec<u8> {
    Msg::new(b'B').u64(100).u64(7).u32(xid).0
}

fn commit() -> Vec<u8> {
    Msg::new(b'C').u8(0).u64(100).u64(108).u64(7).0
}

/// Insert, Update or Delete of relation 1 (or `relid` for Insert).
fn ins(stream: Option<u32>, relid: u32, vals: &[V]) -> Vec<u8> {
    Msg::new(b'I').xid(stream).u32(relid).tuple(b'N', vals).0
}

fn upd(old: Option<(u8, &[V])>, new: &[V]) -> Vec<u8> {
    let m = Msg::new(b'U').u32(1);
    let m = match old {
        Some((kind, t)) => m.tuple(kind, t),
        None => m,
    };
    m.tuple(b'N', new).0
}

fn del(kind: u8, old: &[V]) -> Vec<u8> {
    Msg::new(b'D').u32(1).tuple(kind, old).0
}

/// Prepare-like messages: flags, two LSNs, timestamp(s), xid, gid.
fn prep(tag: u8) -> Vec<u8> {
    let m = Msg::new(tag).u8(0).u64(1).u64(2).u64(3);
    let m = if tag == b'r' { m.u64(4) } else { m };
    m.u32(77).s("gid").0
}

/// A one-line summary of an event.
fn summary(e: &Event<'_>) -> String {
    let mut s = e.op.as_str().to_owned();
    if let Some(r) = e.relation {
        write!(s, " {}.{}", r.schema, r.name).unwrap();
    }
    let (xid, subxid) = (e.xid.map(u64::from), e.subxid.map(u64::from));
    let ts = e.commit_ts.and_then(|t| u64::try_from(t).ok());
    let at = |lsn: Option<Lsn>| lsn.map(|l| l.0);
    let (lsn, commit_lsn, end) = (at(e.lsn), at(e.commit_lsn), at(e.end_lsn));
    let fields = [lsn, commit_lsn, end, xid, subxid, ts];
    let names = ["lsn", "commit_lsn", "end", "xid", "subxid", "ts"];
    for (k, v) in names.into_iter().zip(fields) {
        if let Some(v) = v {
            write!(s, " {k}={v}").unwrap();
        }
    }
    if let Some(gid) = e.gid {
        write!(s, " gid={}", String::from_utf8_lossy(gid)).unwrap();
    }
    if let Some(ts) = e.prepare_ts {
        write!(s, " prepared={ts}").unwrap();
    }
    if e.streamed {
        s.push_str(" streamed");
    }
    if let Some(t) = e.truncate {
        write!(s, " cascade={} restart={}", t.cascade, t.restart_identity).unwrap();
    }
    if let Some(m) = e.message {
        let text = |b| String::from_utf8_lossy(b).into_owned();
        let (p, c, tx) = (text(m.prefix), text(m.content), m.transactional);
        write!(s, " msg={p}:{c} tx={tx}").unwrap();
    }
    for (k, row) in [("old", e.old), ("new", e.new)] {
        let Some(row) = row else { continue };
        write!(s, " {k}{}=", if row.key_only { "[K]" } else { "" }).unwrap();
        for (c, d) in row.columns() {
            let v = match d {
                Datum::Null => "null".into(),
                Datum::UnchangedToast => "~".into(),
                Datum::Text(t) => String::from_utf8_lossy(t),
            };
            write!(s, "{}:{v},", c.name).unwrap();
        }
    }
    s
}

/// Decodes one message; returns the outcome and a summary of each event.
fn decode_one(
    d: &mut PgOutput,
    lsn: Lsn,
    m: &[u8],
    cat: &Catalog,
) -> (Result<Decoded, DecodeError>, Vec<String>) {
    let mut out = Events::new();
    let res = d.decode(lsn, m, cat, &mut out);
    (res, out.iter().map(summary).collect())
}

/// A decoder that knows `public.r1(id, a, b)` (identity DEFAULT) and
/// `public.r2(k)` (identity USING INDEX).
fn decoder() -> PgOutput {
    let mut d = PgOutput::new();
    let r2 = rel(None, 2, b'i', &[(1, "k", 23)]);
    feed(&mut d, &[&rel(None, 1, b'd', T_COLS), &r2]);
    d
}

/// Decodes messages at lsn 5, each of which must be `Done`.
fn run(d: &mut PgOutput, cat: &Catalog, msgs: &[&[u8]]) -> Vec<String> {
    let mut lines = Vec::new();
    for m in msgs {
        let (res, events) = decode_one(d, Lsn(5), m, cat);
        assert_eq!(res.unwrap(), Decoded::Done, "{m:?}");
        lines.extend(events);
    }
    lines
}

fn feed(d: &mut PgOutput, msgs: &[&[u8]]) -> Vec<String> {
    run(d, &Catalog::default(), msgs)
}

fn try_decode(d: &mut PgOutput, m: &[u8]) -> Result<Decoded, DecodeError> {
    decode_one(d, Lsn(5), m, &Catalog::default()).0
}

fn err(d: &mut PgOutput, m: &[u8]) -> (char, usize, &'static str) {
    let e = try_decode(d, m).unwrap_err();
    (e.tag, e.offset, e.what)
}

#[test]
fn begin_insert_commit() {
    let mut d = decoder();
    let i = ins(None, 1, &[T("7"), T("x"), N]);
    let out = feed(&mut d, &[&begin(741), &i, &commit()]);
    assert_eq!(
        out,
        [
            "begin commit_lsn=100 xid=741 ts=7",
            "insert public.r1 lsn=5 commit_lsn=100 xid=741 ts=7 new=id:7,a:x,b:null,",
            "commit commit_lsn=100 end=108 xid=741 ts=7",
        ]
    );
    assert!(d.tx.is_none());
}

#[test]
fn updates_and_deletes() {
    let new: &[V] = &[T("7"), T("y"), U];
    let msgs = [
        upd(Some((b'K', &[T("6"), N, N])), new),
        upd(Some((b'O', &[T("6"), T("x"), T("z")])), new),
        upd(None, new),
        del(b'K', &[T("7"), N, N]),
        del(b'O', &[T("7"), T(""), N]),
    ];
    let msgs: Vec<&[u8]> = msgs.iter().map(Vec::as_slice).collect();
    assert_eq!(
        feed(&mut decoder(), &msgs),
        [
            "update public.r1 lsn=5 old[K]=id:6, new=id:7,a:y,b:~,",
            "update public.r1 lsn=5 old=id:6,a:x,b:z, new=id:7,a:y,b:~,",
            "update public.r1 lsn=5 new=id:7,a:y,b:~,",
            "delete public.r1 lsn=5 old[K]=id:7,",
            "delete public.r1 lsn=5 old=id:7,a:,b:null,",
        ]
    );
}

#[test]
fn truncate_two_tables() {
    let mut d = decoder();
    let t = Msg::new(b'T').u32(2).u8(3).u32(2).u32(1).0;
    let out = feed(&mut d, &[&begin(9), &t]);
    let tail = "lsn=5 commit_lsn=100 xid=9 ts=7 cascade=true restart=true";
    assert_eq!(
        out[1..],
        [
            format!("truncate public.r2 {tail}"),
            format!("truncate public.r1 {tail}")
        ]
    );
    // An unknown relid anywhere: an error and no events at all.
    let bad = Msg::new(b'T').u32(2).u8(0).u32(1).u32(99).0;
    let (e, events) = decode_one(&mut d, Lsn(5), &bad, &Catalog::default());
    assert_eq!(e.unwrap_err().what, "truncate of unknown relation");
    assert!(events.is_empty());
}

#[test]
fn messages() {
    let m = |flags| Msg::new(b'M').u8(flags).u64(42).s("pfx").data(b"hi").0;
    let out = feed(&mut decoder(), &[&m(0), &begin(3), &m(1)]);
    assert_eq!(out[0], "message lsn=42 msg=pfx:hi tx=false");
    assert_eq!(
        out[2],
        "message lsn=42 commit_lsn=100 xid=3 ts=7 msg=pfx:hi tx=true"
    );
}

#[test]
fn relation_replacement_and_identities() {
    let mut d = decoder();
    let r1 = rel(None, 1, b'd', &[(0, "a", 25), (1, "id", 20)]);
    let i = ins(None, 1, &[T("x"), T("8")]);
    let out = feed(&mut d, &[&r1, &i]);
    assert_eq!(
        out,
        ["relation public.r1", "insert public.r1 lsn=5 new=a:x,id:8,"]
    );
    assert_eq!(d.relations[&1].key, [1]);
    let old_shape = ins(None, 1, &[T("7"), T("x"), N]);
    assert_eq!(
        err(&mut d, &old_shape),
        ('I', 6, "column count differs from the relation's")
    );
    let n = rel(None, 3, b'n', &[(0, "a", 23)]);
    let i = rel(None, 4, b'i', &[(0, "a", 23), (1, "b", 23), (1, "c", 23)]);
    feed(&mut d, &[&n, &i]);
    assert!(d.relations[&3].key.is_empty());
    assert_eq!(d.relations[&4].key, [1, 2]);
    assert!(d.relations[&4].columns[1].identity && !d.relations[&4].columns[0].identity);
}

#[test]
fn identity_full_asks_primary_key_every_time() {
    let (mut d, mut cat) = (decoder(), Catalog::default());
    let f = rel(None, 5, b'f', &[(1, "a", 23), (1, "b", 23)]);
    cat.insert_primary_key(5, vec!["b".into()]); // maybe stale: asked anyway
    let need = Decoded::Need(CatalogRequest::PrimaryKey(5));
    let ask = |d: &mut PgOutput, cat: &Catalog| {
        let (res, events) = decode_one(d, Lsn(0), &f, cat);
        assert!(events.is_empty(), "{events:?}");
        res
    };
    assert_eq!(ask(&mut d, &cat).unwrap(), need);
    assert!(!d.relations.contains_key(&5));
    cat.forget_primary_key(5);
    cat.insert_primary_key(5, vec!["a".into()]);
    run(&mut d, &cat, &[&f]);
    assert_eq!(d.relations[&5].key, [0]);
    // The next FULL message asks again; no primary key means no key.
    assert_eq!(ask(&mut d, &cat).unwrap(), need);
    cat.insert_primary_key(5, vec![]);
    run(&mut d, &cat, &[&f]);
    assert!(d.relations[&5].key.is_empty());
}

#[test]
fn unknown_types_need_catalog_without_state_change() {
    let (mut d, mut cat) = (decoder(), Catalog::default());
    let e = [(0, "e", 16400), (0, "f", 16390), (0, "g", 16400)];
    let r = rel(None, 1, b'd', &[(1, "id", 23), e[0], e[1], e[2]]);
    let need = Decoded::Need(CatalogRequest::Types(vec![16390, 16400]));
    let (res, events) = decode_one(&mut d, Lsn(0), &r, &cat);
    assert_eq!((res.unwrap(), events.len()), (need, 0));
    assert_eq!(d.relations[&1].columns.len(), 3, "old relation kept");
    cat.insert_type(16390, ValueKind::Json);
    cat.insert_type(16400, ValueKind::Text);
    run(&mut d, &cat, &[&r]);
    assert_eq!(d.relations[&1].columns[2].kind, ValueKind::Json);
}

#[test]
fn streaming() {
    let mut d = decoder();
    let s = Some(50);
    let start = Msg::new(b'S').u32(50).u8(1).0;
    let ty = Msg::new(b'Y').xid(s).u32(16500).s("public").s("mood").0;
    let msg = Msg::new(b'M').xid(s).u8(1).u64(42).s("p").data(b"").0;
    let stop = Msg::new(b'E').0;
    let r6 = rel(s, 6, b'd', &[(1, "id", 23)]);
    let i6 = ins(Some(51), 6, &[T("1")]);
    let out = feed(&mut d, &[&begin(1), &start, &r6, &ty, &i6, &msg, &stop]);
    assert_eq!(out[1], "relation public.r6");
    assert_eq!(
        out[2..],
        [
            "insert public.r6 lsn=5 xid=50 subxid=51 streamed new=id:1,",
            "message lsn=42 xid=50 streamed msg=p: tx=true",
        ]
    );
    assert!(d.stream_xid.is_none());
    let sc = Msg::new(b'c').u32(50).u8(0).u64(200).u64(208).u64(9).0;
    let abort = Msg::new(b'A').u32(50).u32(50).0;
    let abort_sub = Msg::new(b'A').u32(50).u32(51).u64(300).u64(10).0;
    assert_eq!(
        feed(&mut d, &[&sc, &abort, &abort_sub]),
        [
            "stream_commit commit_lsn=200 end=208 xid=50 ts=9",
            "stream_abort xid=50",
            "stream_abort xid=50 subxid=51",
        ]
    );
}

#[test]
fn two_phase_messages_and_what_origin_and_type_emit() {
    let mut d = decoder();
    let bp = Msg::new(b'b').u64(1).u64(2).u64(3).u32(77).s("g1").0;
    let origin = Msg::new(b'O').u64(1).s("node").0;
    let ty = Msg::new(b'Y').u32(16500).s("public").s("mood").0;
    let i = ins(None, 2, &[T("1")]);
    let (p, k, sp, r) = (prep(b'P'), prep(b'K'), prep(b'p'), prep(b'r'));
    let out = feed(&mut d, &[&bp, &i, &p, &k, &sp, &r, &origin, &ty]);
    assert_eq!(
        out,
        [
            "begin xid=77 gid=g1",
            "insert public.r2 lsn=5 xid=77 gid=g1 new=k:1,",
            "prepare lsn=1 end=2 xid=77 gid=gid prepared=3",
            "commit_prepared commit_lsn=1 end=2 xid=77 ts=3 gid=gid",
            "stream_prepare lsn=1 end=2 xid=77 gid=gid prepared=3",
            "rollback_prepared end=2 xid=77 gid=gid",
        ]
    );
    assert!(d.tx.is_none());
    // After the prepare, changes are no longer the prepared transaction's.
    let out = feed(&mut d, &[&begin(78), &i]);
    assert_eq!(
        out[1],
        "insert public.r2 lsn=5 commit_lsn=100 xid=78 ts=7 new=k:1,"
    );
}

/// A valid message of every type, and whether it belongs in a stream.
    #[rustfmt::skip]
    fn samples() -> Vec<(bool, Vec<u8>)> {
        let s = Some(50);
        let plain = [
            begin(1), commit(), prep(b'P'), prep(b'K'), prep(b'p'), prep(b'r'),
            Msg::new(b'b').u64(1).u64(2).u64(3).u32(77).s("gid").0,
            Msg::new(b'O').u64(1).s("node").0,
            Msg::new(b'Y').u32(16500).s("public").s("mood").0,
            rel(None, 1, b'd', T_COLS),
            ins(None, 1, &[T("7"), T("x"), N]),
            upd(Some((b'K', &[T("6"), N, N])), &[T("7"), U, T("")]),
            upd(None, &[T("7"), U, N]),
            del(b'O', &[T("6"), T("a"), N]),
            Msg::new(b'T').u32(2).u8(1).u32(1).u32(2).0,
            Msg::new(b'M').u8(1).u64(42).s("p").data(b"abc").0,
            Msg::new(b'S').u32(50).u8(0).0,
            Msg::new(b'E').0,
            Msg::new(b'c').u32(50).u8(0).u64(200).u64(208).u64(9).0,
            Msg::new(b'A').u32(50).u32(51).u64(300).u64(10).0,
        ];
        let streamed = [
            rel(s, 1, b'd', T_COLS),
            ins(s, 1, &[T("7"), T("x"), N]),
            Msg::new(b'D').u32(50).u32(1).tuple(b'K', &[T("7"), N, N]).0,
            Msg::new(b'T').u32(50).u32(1).u8(0).u32(1).0,
            Msg::new(b'M').u32(50).u8(1).u64(42).s("p").data(b"x").0,
            Msg::new(b'Y').u32(50).u32(16500).s("public").s("mood").0,
        ];
        let plain = plain.into_iter().map(|m| (false, m));
        plain.chain(streamed.into_iter().map(|m| (true, m))).collect()
    }

fn decoder_in(streamed: bool) -> PgOutput {
    let mut d = decoder();
    d.stream_xid = streamed.then_some(50);
    d
}

#[test]
fn every_truncated_message_is_an_error() {
    for (streamed, m) in samples() {
        try_decode(&mut decoder_in(streamed), &m).unwrap();
        for len in 0..m.len() {
            // Stream Abort without the proto-4 parallel fields is whole.
            if m.first() == Some(&b'A') && len == 9 {
                continue;
            }
            let res = try_decode(&mut decoder_in(streamed), &m[..len]);
            assert!(res.is_err(), "{m:?} cut at {len}: {res:?}");
        }
    }
}

#[test]
    #[rustfmt::skip]
    fn malformed() {
        let mut d = decoder();
        let one = |m: Msg| m.u32(2).u8(b'N').i16(1);
        assert_eq!(err(&mut d, &[]), ('?', 0, "message ends early"));
        assert_eq!(err(&mut d, b"Z1"), ('Z', 0, "unknown message type"));
        assert_eq!(err(&mut d, &ins(None, 9, &[T("1")])), ('I', 1, "change for unknown relation"));
        assert_eq!(err(&mut d, &ins(None, 2, &[N, N])), ('I', 6, "column count differs from the relation's"));
        assert_eq!(err(&mut d, &Msg::new(b'I').u32(2).u8(b'N').i16(-1).0), ('I', 6, "negative column count"));
        assert_eq!(err(&mut d, &one(Msg::new(b'I')).u8(b't').i32(-1).0), ('I', 9, "negative length"));
        assert_eq!(err(&mut d, &one(Msg::new(b'I')).u8(b'b').data(b"").0), ('I', 8, "binary tuple data not requested"));
        assert_eq!(err(&mut d, &one(Msg::new(b'I')).u8(b'x').0), ('I', 8, "unknown tuple value kind"));
        assert_eq!(err(&mut d, &Msg::new(b'U').u32(2).tuple(b'K', &[N]).u8(b'X').0), ('U', 9, "expected new tuple 'N'"));
        assert_eq!(err(&mut d, &one(Msg::new(b'D')).u8(b'n').0), ('D', 5, "expected old tuple 'K' or 'O'"));
        assert_eq!(err(&mut d, &Msg::new(b'M').u8(0).u64(1).s("p").i32(-5).0), ('M', 12, "negative length"));
        assert_eq!(err(&mut d, &Msg::new(b'R').u32(1).s("s").s("t").u8(b'd').i16(-1).0).2, "negative column count");
        assert_eq!(err(&mut d, &rel(None, 1, b'x', &[])), ('R', 15, "unknown replica identity"));
        assert_eq!(err(&mut d, &Msg::new(b'T').u32(u32::MAX).u8(0).u32(1).0), ('T', 10, "message ends early"));
        assert_eq!(err(&mut d, &Msg::new(b'O').u64(1).raw(b"no nul").0), ('O', 9, "unterminated string"));
    }

#[test]
fn fuzzed_messages_never_panic() {
    let samples = samples();
    let mut next = crate::decode::fuzz_numbers();
    let mut d = decoder();
    for i in 0..100_000 {
        if i % 1000 == 0 {
            d = decoder(); // don't let junk relations pile up
        }
        let (streamed, m) = &samples[next() % samples.len()];
        let mut m = m.clone();
        for _ in 0..=next() % 4 {
            let at = next() % (m.len() + 1);
            match (next() % 4, m.get_mut(at)) {
                (0, Some(b)) => *b = next() as u8,
                (1, Some(b)) => *b ^= 0x80,
                (2, _) => m.truncate(at),
                _ => m.insert(at, [0, 0xff, b'n', b'u', b't'][next() % 5]),
            }
        }
        d.stream_xid = streamed.then_some(50);
        let _ = d.decode(Lsn(5), &m, &Catalog::default(), &mut Events::new());
    }
}
