//! The event model: what every decoder produces and every
//! [`Handler`](crate::Handler) receives, the sinks included.
//!
//! The model imports nothing of the crate: decoders build on it, sinks and
//! the pipeline read it. ([`Row::to_json`] is implemented beside the
//! encoder it calls.)
//!
//! Events borrow from the decoder (relation cache, message bytes, scratch
//! space), so producing one allocates nothing; copy out what must outlive a
//! handler call. Nothing in an event says which output plugin decoded it.
//! docs/output.md describes each field as the JSON output shows it.

mod lsn;

pub use lsn::{Lsn, ParseLsnError};

/// How a column's text form becomes JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ValueKind {
    /// bool: `t`/`f` become `true`/`false`.
    Bool,
    /// int2, int4, int8, oid: the text is copied as a JSON number.
    Int,
    /// float8: a JSON number in the shortest form that reads back as the
    /// same double; `NaN` and `±Infinity` as strings.
    Float,
    /// float4: the same, shortest for a single-precision float.
    Float4,
    /// numeric: an exact string.
    Numeric,
    /// json, jsonb: embedded as a value.
    Json,
    /// timestamptz: an RFC 3339 string in UTC.
    Timestamptz,
    /// timestamp: an ISO 8601 string without zone.
    Timestamp,
    /// bytea: the hex form as a string.
    Bytea,
    /// date: a string of its text output (Debezium: days since 1970).
    Date,
    /// time: a string of its text output (Debezium: µs or ms of the day).
    Time,
    /// timetz: a string of its text output (Debezium: ISO 8601 in UTC).
    Timetz,
    /// interval: a string of its ISO 8601 text (Debezium: µs).
    Interval,
    /// money: a string of its text output (Debezium: the plain amount).
    Money,
    /// Everything else: a JSON string of the text output.
    Text,
    /// An array of `elem`, whose text form separates elements with `delim`.
    Array {
        /// The kind of each element.
        elem: Box<ValueKind>,
        /// The type's `typdelim`: `;` for box, `,` otherwise.
        delim: u8,
    },
}

/// Microseconds since 2000-01-01 00:00:00 UTC, PostgreSQL's timestamp epoch.
pub type PgTimestamp = i64;

/// What happened; the `op` field of a JSON line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// A row inserted (`new`).
    Insert,
    /// A row updated (`new`; `old` when the key changed or the replica
    /// identity is FULL).
    Update,
    /// A row deleted (`old`: the key, or the whole row under FULL).
    Delete,
    /// A table truncated.
    Truncate,
    /// A row of the initial snapshot (`new`, `snapshot_lsn`).
    Read,
    /// A `pg_logical_emit_message` message.
    Message,
    /// A transaction begins.
    Begin,
    /// A transaction commits (`end_lsn` is the position acknowledged).
    Commit,
    /// A streamed transaction commits.
    StreamCommit,
    /// A streamed transaction, or one of its subtransactions (`subxid`),
    /// aborts: forget its streamed changes.
    StreamAbort,
    /// A table's description, sent again after a schema change
    /// (`--include-schema`).
    Relation,
    /// A two-phase transaction was prepared (`Config::two_phase`): its
    /// changes, which came before with its `gid`, are durable on the
    /// server but not committed; `commit_prepared` or `rollback_prepared`
    /// follows, perhaps much later. `end_lsn` is acknowledged once it is
    /// complete.
    Prepare,
    /// A prepared transaction committed (`gid`, `commit_lsn`, `commit_ts`).
    CommitPrepared,
    /// A prepared transaction rolled back: undo the changes of its `gid`.
    RollbackPrepared,
    /// A streamed transaction was prepared (`Config::streaming` with
    /// `Config::two_phase`).
    StreamPrepare,
    /// A table's backfill (`--backfill`) is complete: `rows` `read` events
    /// came out for it.
    BackfillDone,
}

impl Op {
    /// The name written in the `op` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Op::Insert => "insert",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Truncate => "truncate",
            Op::Read => "read",
            Op::Message => "message",
            Op::Begin => "begin",
            Op::Commit => "commit",
            Op::StreamCommit => "stream_commit",
            Op::StreamAbort => "stream_abort",
            Op::Relation => "relation",
            Op::Prepare => "prepare",
            Op::CommitPrepared => "commit_prepared",
            Op::RollbackPrepared => "rollback_prepared",
            Op::StreamPrepare => "stream_prepare",
            Op::BackfillDone => "backfill_done",
        }
    }

    /// Whether this op counts as a change for `--max-changes` (transaction
    /// markers do not).
    pub fn is_change(self) -> bool {
        !matches!(
            self,
            Op::Begin
                | Op::Commit
                | Op::StreamCommit
                | Op::StreamAbort
                | Op::Relation
                | Op::Prepare
                | Op::CommitPrepared
                | Op::RollbackPrepared
                | Op::StreamPrepare
                | Op::BackfillDone
        )
    }
}

/// A table as the server last described it.
///
/// Replaced whole when the server sends a new description (schema change).
#[derive(Debug, Clone)]
pub struct Relation {
    /// The table's schema.
    pub schema: String,
    /// The table's name.
    pub name: String,
    /// The published columns, in table order.
    pub columns: Vec<Column>,
    /// Indices into `columns` of the columns that form `key`: the replica
    /// identity index for `DEFAULT`/`USING INDEX`, the primary key for `FULL`
    /// when the table has one, empty otherwise (no `key` is written).
    pub key: Vec<usize>,
}

/// One column of a [`Relation`].
#[derive(Debug, Clone)]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// How the column's text form maps to JSON (domains already resolved).
    pub kind: ValueKind,
    /// The column's type and type modifier as the server sent them (-1:
    /// no modifier, or not reported).
    pub type_oid: u32,
    /// See `type_oid`.
    pub type_modifier: i32,
    /// Part of the replica identity: the only columns a key-only old tuple
    /// carries.
    pub identity: bool,
}

#[cfg(test)]
impl Column {
    /// A column without type modifier, for the encoders' unit tests.
    pub(crate) fn test(name: &str, kind: ValueKind, type_oid: u32, identity: bool) -> Column {
        Column {
            name: name.into(),
            kind,
            type_oid,
            type_modifier: -1,
            identity,
        }
    }
}

/// One column value as the server sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Datum<'a> {
    /// SQL NULL.
    Null,
    /// A TOASTed value the change did not touch: the server did not send it.
    UnchangedToast,
    /// PostgreSQL's text output for the column's type.
    Text(&'a [u8]),
}

/// Where a [`Datum`] lies in a row's data buffer; kept in reusable scratch
/// vectors so decoding a row allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RawDatum {
    Null,
    UnchangedToast,
    Text { start: u32, end: u32 },
}

/// A row image: the relation's columns paired with their values.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    /// The table the row belongs to.
    pub relation: &'a Relation,
    pub(crate) data: &'a [u8],
    /// One entry per column of `relation`, in order.
    pub(crate) datums: &'a [RawDatum],
    /// A key-only image (pgoutput's `K` tuple): only identity columns are
    /// meaningful, the others are sent as NULL and must not be written.
    pub key_only: bool,
}

impl<'a> Row<'a> {
    /// The value of column `i`.
    pub fn get(&self, i: usize) -> Datum<'a> {
        match self.datums.get(i) {
            Some(RawDatum::Text { start, end }) => self
                .data
                .get(*start as usize..*end as usize)
                .map_or(Datum::Null, Datum::Text),
            Some(RawDatum::UnchangedToast) => Datum::UnchangedToast,
            Some(RawDatum::Null) | None => Datum::Null,
        }
    }

    /// The value of the column named `name`, if the image carries it.
    pub fn get_named(&self, name: &str) -> Option<Datum<'a>> {
        self.columns().find(|(c, _)| c.name == name).map(|(_, d)| d)
    }

    /// The columns this image carries, with their values.
    pub fn columns(&self) -> impl Iterator<Item = (&'a Column, Datum<'a>)> + '_ {
        let key_only = self.key_only;
        self.relation
            .columns
            .iter()
            .enumerate()
            .filter(move |(_, c)| !key_only || c.identity)
            .map(move |(i, c)| (c, self.get(i)))
    }
}

/// A `message` event's payload (`pg_logical_emit_message`).
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    /// The prefix the message was emitted with.
    pub prefix: &'a [u8],
    /// Its content: any bytes.
    pub content: &'a [u8],
    /// Emitted as part of a transaction (else on its own, at once).
    pub transactional: bool,
}

/// Truncate options; absent when the plugin does not report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TruncateFlags {
    /// `TRUNCATE … CASCADE`.
    pub cascade: bool,
    /// `TRUNCATE … RESTART IDENTITY`.
    pub restart_identity: bool,
}

/// One event. Which fields are set depends on `op`; the JSON writer prints the
/// ones that are set, in the spec's key order.
///
/// ```
/// use pgstream::{Event, Op};
///
/// fn describe(ev: &Event<'_>) -> String {
///     match (ev.op, ev.relation) {
///         (Op::Insert | Op::Update | Op::Delete, Some(rel)) => {
///             format!("{} on {}.{}", ev.op.as_str(), rel.schema, rel.name)
///         }
///         (op, _) => op.as_str().to_string(),
///     }
/// }
/// assert_eq!(describe(&Event::new(Op::Begin)), "begin");
/// ```
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Event<'a> {
    /// What happened.
    pub op: Op,
    /// The table, for row changes and truncates.
    pub relation: Option<&'a Relation>,
    /// The change's own WAL position.
    pub lsn: Option<Lsn>,
    /// The transaction's id (the top transaction's, when streamed).
    pub xid: Option<u32>,
    /// Start of the transaction's commit record.
    pub commit_lsn: Option<Lsn>,
    /// The transaction's commit time.
    pub commit_ts: Option<PgTimestamp>,
    /// A two-phase transaction's global id (`PREPARE TRANSACTION 'gid'`),
    /// on its changes and on the two-phase events.
    pub gid: Option<&'a [u8]>,
    /// When a two-phase transaction was prepared (`prepare`,
    /// `stream_prepare`).
    pub prepare_ts: Option<PgTimestamp>,
    /// The replication origin the transaction came from (changes applied by
    /// another replication system); absent for local changes.
    pub origin: Option<&'a str>,
    /// End of the commit record: the position acknowledged once the
    /// transaction is complete. Set on `Commit`, `StreamCommit` and the
    /// two-phase events (not on the snapshot's `Commit`); never printed.
    pub end_lsn: Option<Lsn>,
    /// `read` events and the snapshot's `Commit` (see
    /// [`Handler::commit`](crate::Handler::commit)): the slot's consistent
    /// point, where the stream takes over from the snapshot.
    pub snapshot_lsn: Option<Lsn>,
    /// A change of a transaction still in progress (`Config::streaming`):
    /// its `stream_commit` or `stream_abort` comes later.
    pub streamed: bool,
    /// Streamed changes of a subtransaction: its xid.
    pub subxid: Option<u32>,
    /// `message` events' payload.
    pub message: Option<Message<'a>>,
    /// `truncate` events' options, when the plugin reports them.
    pub truncate: Option<TruncateFlags>,
    /// The row before the change (see [`Op`] for when it is there).
    pub old: Option<Row<'a>>,
    /// The row after the change.
    pub new: Option<Row<'a>>,
    /// `backfill_done`: how many rows the table's backfill read.
    pub rows: Option<u64>,
}

impl<'a> Event<'a> {
    /// An event of `op` with every optional field unset.
    pub fn new(op: Op) -> Self {
        Event {
            op,
            relation: None,
            lsn: None,
            xid: None,
            commit_lsn: None,
            commit_ts: None,
            gid: None,
            prepare_ts: None,
            origin: None,
            end_lsn: None,
            snapshot_lsn: None,
            streamed: false,
            subxid: None,
            message: None,
            truncate: None,
            old: None,
            new: None,
            rows: None,
        }
    }
}
