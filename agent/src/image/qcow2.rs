//! qcow2 → raw while the image streams past, in bounded memory.
//!
//! The image is read once, front to back, as it downloads. The header
//! names the L1 table, the L1 table names the L2 tables, and each L2 table
//! names where its guest clusters lie in the file; a cluster is written to
//! its guest offset on the disk as its bytes go by, a compressed cluster
//! (deflate or zstd) when its last byte has, and unallocated and zero
//! clusters are skipped, never written. Tables can also be handed in
//! before the stream starts ([`Qcow2Writer::preload`], from Range
//! requests): the stream then only checks that it carries the same bytes.
//!
//! Invariants:
//! - memory is the header cluster, the tables and compressed clusters
//!   being read (a few clusters), one entry per allocated cluster whose
//!   L2 table has been read but whose bytes have not gone by yet, and the
//!   *spool*: while some table is still unread, the bytes of the last
//!   `spool_limit` bytes of the stream that no known extent claimed, and
//!   the last sector of each compressed cluster (the next one may begin
//!   there, named by a table still to come). An image whose tables come
//!   more than that after their data is refused, not buffered without
//!   bound;
//! - nothing outside `[0, virtual size)` is written; every table entry is
//!   checked (alignment, range) before it is followed;
//! - refused as Ironic's format inspector refuses them: backing files,
//!   external data files, encryption, the corrupt bit, unknown
//!   incompatible features; extended L2 entries (subclusters) are refused
//!   as unsupported;
//! - an image that ends before every byte its tables name went by is
//!   truncated: an error, never a silently partial disk.

use std::collections::BTreeMap;

/// Where converted bytes go: the guest (virtual disk) offset and the bytes.
pub trait Sink {
    /// # Errors
    /// The device's write errors.
    fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()>;
}

/// The qcow2 magic, `QFI\xfb`.
pub const MAGIC: [u8; 4] = *b"QFI\xfb";

/// Why a qcow2 image could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum Qcow2Error {
    #[error("qcow2 image refused: {0}")]
    Refused(String),
    #[error("qcow2 image is corrupt: {0}")]
    Corrupt(String),
    #[error("qcow2 image is truncated: {0}")]
    Truncated(String),
    #[error(
        "qcow2 image keeps its tables more than {limit} bytes after their data and the server does not answer Range requests; serve it with Range support or convert it with qemu-img"
    )]
    SpoolFull { limit: usize },
    #[error("the stream does not match the tables read before it at offset {0}")]
    Changed(u64),
    #[error("{0}")]
    Write(std::io::Error),
}

/// How compressed clusters are compressed (the header's compression type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compression {
    Deflate,
    Zstd,
}

/// What the header says.
#[derive(Debug, Clone)]
pub struct Header {
    pub version: u32,
    pub cluster_bits: u32,
    /// The virtual disk's size in bytes.
    pub size: u64,
    l1_size: u64,
    l1_table_offset: u64,
    compression: Compression,
}

/// The largest L1 table followed (the qcow2 driver's own bound).
const MAX_L1_BYTES: u64 = 32 << 20;
/// The most extents named ahead of the stream (a crafted image of tables
/// naming far-away clusters must not grow memory without bound; tables
/// read ahead name at most `PRELOAD_LIMIT / 8` of them).
const MAX_AHEAD: usize = 1 << 19;
/// The most bytes one spool run holds (runs are dropped whole).
const SPOOL_RUN: usize = 64 << 10;
/// Offsets in table entries are below 2^56.
const OFFSET_MASK: u64 = 0x00ff_ffff_ffff_fe00;

fn be32(b: &[u8], at: usize) -> u32 {
    let mut a = [0; 4];
    a.copy_from_slice(&b[at..at + 4]);
    u32::from_be_bytes(a)
}

fn be64(b: &[u8], at: usize) -> u64 {
    let mut a = [0; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_be_bytes(a)
}

impl Header {
    /// Bytes needed before [`Header::parse`] can decide (v3's length field).
    pub const PREFIX: usize = 104;

    /// Parses and checks the header; `bytes` holds at least
    /// [`Header::PREFIX`] bytes, and the whole header cluster when the
    /// stream had that many (header extensions are read from it).
    ///
    /// # Errors
    /// What the image is refused or rejected for.
    pub fn parse(bytes: &[u8]) -> Result<Header, Qcow2Error> {
        if bytes.len() < 72 || bytes[..4] != MAGIC {
            return Err(Qcow2Error::Corrupt("no qcow2 header".into()));
        }
        let version = be32(bytes, 4);
        if version != 2 && version != 3 {
            return Err(Qcow2Error::Refused(format!("unknown version {version}")));
        }
        if be64(bytes, 8) != 0 {
            return Err(Qcow2Error::Refused("it has a backing file".into()));
        }
        let cluster_bits = be32(bytes, 20);
        if !(9..=21).contains(&cluster_bits) {
            return Err(Qcow2Error::Corrupt(format!(
                "cluster_bits {cluster_bits} is outside 9..=21"
            )));
        }
        if be32(bytes, 32) != 0 {
            return Err(Qcow2Error::Refused("it is encrypted".into()));
        }
        let size = be64(bytes, 24);
        let l1_size = u64::from(be32(bytes, 36));
        let l1_table_offset = be64(bytes, 40);
        let cluster = 1_u64 << cluster_bits;
        let per_l1 = cluster * (cluster / 8);
        if l1_size * 8 > MAX_L1_BYTES || l1_size < size.div_ceil(per_l1) {
            return Err(Qcow2Error::Corrupt(format!(
                "an L1 table of {l1_size} entries cannot describe {size} bytes"
            )));
        }
        if l1_size > 0 && (l1_table_offset == 0 || !l1_table_offset.is_multiple_of(cluster)) {
            return Err(Qcow2Error::Corrupt(format!(
                "the L1 table's offset {l1_table_offset} is not a cluster's"
            )));
        }
        let mut compression = Compression::Deflate;
        let mut extensions_at = 72;
        if version == 3 {
            if bytes.len() < Self::PREFIX {
                return Err(Qcow2Error::Truncated("in its header".into()));
            }
            let incompatible = be64(bytes, 72);
            for (bit, what) in [
                (1, "it is marked corrupt"),
                (2, "it has an external data file"),
                (
                    4,
                    "it uses extended L2 entries (subclusters), which ferric-agent does not read",
                ),
            ] {
                if incompatible & (1 << bit) != 0 {
                    return Err(Qcow2Error::Refused(what.into()));
                }
            }
            // Bit 0 (dirty) only concerns refcounts, bit 3 the compression type.
            if incompatible & !0b1111 != 0 {
                return Err(Qcow2Error::Refused(format!(
                    "unknown incompatible features {incompatible:#x}"
                )));
            }
            let header_length = be32(bytes, 100) as usize;
            if !(Self::PREFIX..=4096).contains(&header_length) {
                return Err(Qcow2Error::Corrupt(format!(
                    "header length {header_length}"
                )));
            }
            if incompatible & (1 << 3) != 0 {
                compression = match bytes.get(104) {
                    Some(0) => Compression::Deflate,
                    Some(1) => Compression::Zstd,
                    Some(other) => {
                        return Err(Qcow2Error::Refused(format!(
                            "unknown compression type {other}"
                        )));
                    }
                    None => return Err(Qcow2Error::Truncated("in its header".into())),
                };
            }
            extensions_at = header_length;
        }
        // Header extensions: an external data file's name is refused even
        // without its feature bit.
        let mut at = extensions_at;
        while at + 8 <= bytes.len() {
            let kind = be32(bytes, at);
            let len = be32(bytes, at + 4) as usize;
            if kind == 0 {
                break;
            }
            if kind == 0x4441_5441 {
                return Err(Qcow2Error::Refused("it has an external data file".into()));
            }
            at += 8 + len.div_ceil(8) * 8;
        }
        Ok(Header {
            version,
            cluster_bits,
            size,
            l1_size,
            l1_table_offset,
            compression,
        })
    }

    fn cluster(&self) -> u64 {
        1 << self.cluster_bits
    }

    /// The guest bytes one L2 table covers.
    fn l2_span(&self) -> u64 {
        self.cluster() * (self.cluster() / 8)
    }
}

/// What a range of the file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    L1,
    L2 {
        guest: u64,
    },
    Data {
        guest: u64,
    },
    Compressed {
        guest: u64,
    },
    /// A table read before the stream (Range): the stream must carry the
    /// same bytes.
    Verify(Vec<u8>),
}

#[derive(Debug, Clone)]
struct Extent {
    start: u64,
    len: u64,
    kind: Kind,
}

impl Extent {
    fn end(&self) -> u64 {
        self.start + self.len
    }

    /// Whether its bytes are gathered before use (else written as they come).
    fn gathered(&self) -> bool {
        !matches!(self.kind, Kind::Data { .. })
    }
}

#[derive(Debug)]
struct Active {
    extent: Extent,
    /// Bytes of the extent delivered so far.
    done: u64,
    buf: Vec<u8>,
}

/// What a conversion did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Converted {
    /// The virtual disk's size.
    pub virtual_size: u64,
    /// Guest bytes written (allocated clusters).
    pub written: u64,
    /// The most the spool held.
    pub spool_peak: usize,
}

/// The streaming converter: feed it the image's bytes in order.
pub struct Qcow2Writer<S: Sink> {
    sink: S,
    spool_limit: usize,
    pos: u64,
    head: Vec<u8>,
    header: Option<Header>,
    future: BTreeMap<(u64, u64), Extent>,
    seq: u64,
    active: Vec<Active>,
    /// Tables named but not read yet (the L1 counts until it is read).
    tables_pending: usize,
    /// Runs of at most [`SPOOL_RUN`] bytes, by offset.
    spool: BTreeMap<u64, Vec<u8>>,
    spool_bytes: usize,
    /// Spooled bytes before this offset were dropped (too far behind).
    spool_dropped: u64,
    done: Converted,
}

impl<S: Sink> Qcow2Writer<S> {
    pub fn new(sink: S, spool_limit: usize) -> Qcow2Writer<S> {
        Qcow2Writer {
            sink,
            spool_limit,
            pos: 0,
            head: Vec::new(),
            header: None,
            future: BTreeMap::new(),
            seq: 0,
            active: Vec::new(),
            tables_pending: 1,
            spool: BTreeMap::new(),
            spool_bytes: 0,
            spool_dropped: 0,
            done: Converted::default(),
        }
    }

    /// The header, once read.
    pub fn header(&self) -> Option<&Header> {
        self.header.as_ref()
    }

    /// Hands in tables read before the stream (the header cluster, the L1
    /// table at its offset, then each L2 table at its offset), so that the
    /// stream's order does not matter; the stream is checked against them.
    ///
    /// # Errors
    /// As [`Qcow2Writer::feed`].
    pub fn preload(&mut self, offset: u64, bytes: &[u8]) -> Result<(), Qcow2Error> {
        if offset == 0 && self.header.is_none() {
            let header = Header::parse(bytes)?;
            self.on_header(header);
            let kept = bytes.len().min(self.cluster_len());
            self.add(Extent {
                start: 0,
                len: kept as u64,
                kind: Kind::Verify(bytes[..kept].to_vec()),
            })?;
            return Ok(());
        }
        let Some(found) = self
            .future
            .iter()
            .find(|(_, e)| e.start == offset && matches!(e.kind, Kind::L1 | Kind::L2 { .. }))
            .map(|(k, _)| *k)
        else {
            return Err(Qcow2Error::Corrupt(format!(
                "no table is named at offset {offset}"
            )));
        };
        let Some(extent) = self.future.remove(&found) else {
            return Ok(());
        };
        if (bytes.len() as u64) < extent.len {
            return Err(Qcow2Error::Truncated(format!(
                "the table at {offset} is past its end"
            )));
        }
        let table = bytes[..extent.len as usize].to_vec();
        self.add(Extent {
            start: extent.start,
            len: extent.len,
            kind: Kind::Verify(table.clone()),
        })?;
        self.complete(extent, table)
    }

    /// Offsets and lengths of tables named but not yet read (for Range
    /// requests after [`Qcow2Writer::preload`]).
    pub fn unread_tables(&self) -> Vec<(u64, u64)> {
        self.future
            .values()
            .filter(|e| matches!(e.kind, Kind::L1 | Kind::L2 { .. }))
            .map(|e| (e.start, e.len))
            .collect()
    }

    fn cluster_len(&self) -> usize {
        self.header
            .as_ref()
            .map_or(1 << 16, |h| h.cluster() as usize)
    }

    fn on_header(&mut self, header: Header) {
        let (l1_at, l1_len) = (header.l1_table_offset, header.l1_size * 8);
        self.done.virtual_size = header.size;
        self.header = Some(header);
        if l1_len == 0 {
            self.tables_pending = 0;
        } else {
            // Added directly: the header cluster is never data.
            self.seq += 1;
            self.future.insert(
                (l1_at, self.seq),
                Extent {
                    start: l1_at,
                    len: l1_len,
                    kind: Kind::L1,
                },
            );
        }
    }

    /// Takes the next bytes of the image.
    ///
    /// # Errors
    /// [`Qcow2Error`] for what the image is refused for, and write errors.
    pub fn feed(&mut self, mut data: &[u8]) -> Result<(), Qcow2Error> {
        while !data.is_empty() {
            if self.header.is_none() {
                let want = if self.head.len() < Header::PREFIX {
                    Header::PREFIX
                } else {
                    // The whole header cluster, for its extensions.
                    1 << be32(&self.head, 20).clamp(9, 21)
                };
                let take = (want - self.head.len()).min(data.len());
                self.head.extend_from_slice(&data[..take]);
                data = &data[take..];
                self.pos += take as u64;
                if self.head.len() == want && want > Header::PREFIX {
                    let head = std::mem::take(&mut self.head);
                    self.on_header(Header::parse(&head)?);
                } else if self.head.len() == Header::PREFIX {
                    // Fail fast on a bad prefix.
                    if self.head[..4] != MAGIC {
                        return Err(Qcow2Error::Corrupt("no qcow2 header".into()));
                    }
                }
                continue;
            }
            self.activate()?;
            // Up to the next extent's start or a table's end: a table read
            // names what follows before those bytes go by.
            let next = self.future.keys().next().map(|(start, _)| *start);
            let table_end = self
                .active
                .iter()
                .filter(|a| matches!(a.extent.kind, Kind::L1 | Kind::L2 { .. }))
                .map(|a| a.extent.end())
                .min();
            let room = next
                .into_iter()
                .chain(table_end)
                .min()
                .map_or(u64::MAX, |s| s - self.pos);
            let n = (data.len() as u64).min(room) as usize;
            if n == 0 {
                continue;
            }
            let (block, rest) = data.split_at(n);
            self.deliver(block)?;
            data = rest;
        }
        Ok(())
    }

    /// Moves the extents that start here into the active set.
    fn activate(&mut self) -> Result<(), Qcow2Error> {
        while let Some(entry) = self.future.first_entry() {
            if entry.key().0 > self.pos {
                break;
            }
            let extent = entry.remove();
            if extent.start < self.pos {
                // Named after it went by (a preload of header bytes).
                self.resolve_passed(extent)?;
                continue;
            }
            self.active.push(Active {
                extent,
                done: 0,
                buf: Vec::new(),
            });
        }
        Ok(())
    }

    /// Delivers the bytes at `self.pos` to the extents they belong to;
    /// bytes nobody claims are spooled while a table is unread.
    fn deliver(&mut self, block: &[u8]) -> Result<(), Qcow2Error> {
        let (from, to) = (self.pos, self.pos + block.len() as u64);
        let mut claimed: Vec<(u64, u64)> = Vec::new();
        let mut finished = Vec::new();
        for (i, active) in self.active.iter_mut().enumerate() {
            let e = &active.extent;
            let (s, t) = (e.start.max(from), e.end().min(to));
            if s >= t {
                continue;
            }
            claimed.push((s, t));
            let bytes = &block[(s - from) as usize..(t - from) as usize];
            if active.extent.gathered() {
                active.buf.extend_from_slice(bytes);
            } else if let Kind::Data { guest } = active.extent.kind {
                let at = guest + (s - active.extent.start);
                write_clipped(&mut self.sink, &mut self.done, at, bytes)?;
            }
            active.done = t - active.extent.start;
            if active.done == active.extent.len {
                finished.push(i);
            }
        }
        if self.tables_pending > 0 {
            // The last sector of a compressed cluster may hold the start
            // of one a later table names: kept too.
            let mut kept: Vec<(u64, u64)> = self
                .active
                .iter()
                .filter(|a| matches!(a.extent.kind, Kind::Compressed { .. }))
                .map(|a| {
                    (
                        a.extent.end().saturating_sub(512).max(from),
                        a.extent.end().min(to),
                    )
                })
                .filter(|(s, t)| s < t)
                .collect();
            claimed.sort_unstable();
            let mut at = from;
            for (s, t) in claimed.iter().copied().chain([(to, to)]) {
                if s > at {
                    kept.push((at, s));
                }
                at = at.max(t);
            }
            kept.sort_unstable();
            let mut at = from;
            for (s, t) in kept {
                let s = s.max(at);
                if s < t {
                    self.spool_put(s, &block[(s - from) as usize..(t - from) as usize]);
                    at = t;
                }
            }
            self.spool_prune(to);
        }
        self.pos = to;
        for i in finished.into_iter().rev() {
            let active = self.active.swap_remove(i);
            self.complete(active.extent, active.buf)?;
        }
        Ok(())
    }

    fn spool_put(&mut self, mut at: u64, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            // Runs arrive in order: extend the last while contiguous.
            if let Some(mut last) = self.spool.last_entry()
                && *last.key() + last.get().len() as u64 == at
                && last.get().len() < SPOOL_RUN
            {
                let n = (SPOOL_RUN - last.get().len()).min(bytes.len());
                last.get_mut().extend_from_slice(&bytes[..n]);
                self.spool_bytes += n;
                (at, bytes) = (at + n as u64, &bytes[n..]);
                continue;
            }
            let n = SPOOL_RUN.min(bytes.len());
            self.spool.insert(at, bytes[..n].to_vec());
            self.spool_bytes += n;
            (at, bytes) = (at + n as u64, &bytes[n..]);
        }
        self.done.spool_peak = self.done.spool_peak.max(self.spool_bytes);
    }

    /// Drops runs that lie wholly more than `spool_limit` bytes behind.
    fn spool_prune(&mut self, pos: u64) {
        let horizon = pos.saturating_sub(self.spool_limit as u64);
        while let Some(first) = self.spool.first_entry() {
            let end = *first.key() + first.get().len() as u64;
            if end > horizon && self.spool_bytes <= self.spool_limit + SPOOL_RUN {
                break;
            }
            self.spool_bytes -= first.get().len();
            self.spool_dropped = self.spool_dropped.max(end);
            first.remove();
        }
    }

    /// The spooled bytes of `[start, end)`, if all were kept.
    fn spooled(&self, start: u64, end: u64) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity((end - start) as usize);
        let mut at = start;
        let first = self.spool.range(..=start).next_back().map(|(k, _)| *k)?;
        for (run_at, run) in self.spool.range(first..end) {
            let run_end = run_at + run.len() as u64;
            if *run_at > at || run_end <= at {
                if run_end <= at {
                    continue;
                }
                return None;
            }
            let upto = run_end.min(end);
            out.extend_from_slice(&run[(at - run_at) as usize..(upto - run_at) as usize]);
            at = upto;
            if at == end {
                return Some(out);
            }
        }
        (at == end).then_some(out)
    }

    /// Registers an extent named by a table just read.
    fn add(&mut self, extent: Extent) -> Result<(), Qcow2Error> {
        if extent.start < self.cluster_len() as u64 && !matches!(extent.kind, Kind::Verify(_)) {
            return Err(Qcow2Error::Corrupt(format!(
                "a table points into the header cluster (offset {})",
                extent.start
            )));
        }
        if matches!(extent.kind, Kind::L2 { .. }) {
            self.tables_pending += 1;
        }
        if extent.start >= self.pos {
            if self.future.len() >= MAX_AHEAD {
                return Err(Qcow2Error::Refused(format!(
                    "its tables name more than {MAX_AHEAD} clusters ahead of the stream"
                )));
            }
            self.seq += 1;
            self.future.insert((extent.start, self.seq), extent);
            return Ok(());
        }
        self.resolve_passed(extent)
    }

    /// An extent whose start went by already: from the spool, or an error.
    fn resolve_passed(&mut self, extent: Extent) -> Result<(), Qcow2Error> {
        let upto = extent.end().min(self.pos);
        let Some(bytes) = self.spooled(extent.start, upto) else {
            if extent.start < self.spool_dropped {
                return Err(Qcow2Error::SpoolFull {
                    limit: self.spool_limit,
                });
            }
            return Err(Qcow2Error::Corrupt(format!(
                "a table points at offset {}, which the image used for something else",
                extent.start
            )));
        };
        if upto == extent.end() {
            if let Kind::Data { guest } = extent.kind {
                write_clipped(&mut self.sink, &mut self.done, guest, &bytes)?;
                return Ok(());
            }
            return self.complete(extent, bytes);
        }
        // It straddles the stream's position: the rest comes.
        let done = upto - extent.start;
        let buf = if let Kind::Data { guest } = extent.kind {
            write_clipped(&mut self.sink, &mut self.done, guest, &bytes)?;
            Vec::new()
        } else {
            bytes
        };
        self.active.push(Active { extent, done, buf });
        Ok(())
    }

    /// An extent whose bytes are all here.
    fn complete(&mut self, extent: Extent, bytes: Vec<u8>) -> Result<(), Qcow2Error> {
        match extent.kind {
            Kind::Data { .. } => Ok(()),
            Kind::Verify(expected) => {
                if bytes == expected {
                    Ok(())
                } else {
                    Err(Qcow2Error::Changed(extent.start))
                }
            }
            Kind::L1 => {
                self.read_l1(&bytes)?;
                self.table_read();
                Ok(())
            }
            Kind::L2 { guest } => {
                self.read_l2(guest, &bytes)?;
                self.table_read();
                Ok(())
            }
            Kind::Compressed { guest } => {
                let cluster = self.decompress(&bytes, extent.start)?;
                write_clipped(&mut self.sink, &mut self.done, guest, &cluster)
            }
        }
    }

    fn table_read(&mut self) {
        self.tables_pending = self.tables_pending.saturating_sub(1);
        if self.tables_pending == 0 {
            // Every cluster is named: what was kept unclaimed is not data.
            self.spool.clear();
            self.spool_bytes = 0;
        }
    }

    fn header_ref(&self) -> Result<&Header, Qcow2Error> {
        self.header
            .as_ref()
            .ok_or_else(|| Qcow2Error::Corrupt("a table before the header".into()))
    }

    fn read_l1(&mut self, table: &[u8]) -> Result<(), Qcow2Error> {
        let header = self.header_ref()?;
        let (span, cluster, size) = (header.l2_span(), header.cluster(), header.size);
        for (i, entry) in table.chunks_exact(8).enumerate() {
            let at = be64(entry, 0) & OFFSET_MASK;
            let guest = i as u64 * span;
            if at == 0 || guest >= size {
                continue;
            }
            if !at.is_multiple_of(cluster) {
                return Err(Qcow2Error::Corrupt(format!(
                    "L1 entry {i} names an unaligned L2 table at {at}"
                )));
            }
            self.add(Extent {
                start: at,
                len: cluster,
                kind: Kind::L2 { guest },
            })?;
        }
        Ok(())
    }

    fn read_l2(&mut self, base: u64, table: &[u8]) -> Result<(), Qcow2Error> {
        let header = self.header_ref()?;
        let (cluster, bits, size, version) = (
            header.cluster(),
            header.cluster_bits,
            header.size,
            header.version,
        );
        let x = 62 - (bits - 8);
        for (i, raw) in table.chunks_exact(8).enumerate() {
            let entry = be64(raw, 0);
            let guest = base + i as u64 * cluster;
            if entry == 0 || guest >= size {
                continue;
            }
            if entry & (1 << 62) != 0 {
                let start = entry & ((1 << x) - 1);
                let sectors = (entry >> x) & ((1 << (bits - 8)) - 1);
                let len = (sectors + 1) * 512 - (start & 511);
                self.add(Extent {
                    start,
                    len,
                    kind: Kind::Compressed { guest },
                })?;
                continue;
            }
            // The zero flag (v3): reads as zeros, nothing to write.
            if version >= 3 && entry & 1 != 0 {
                continue;
            }
            let at = entry & OFFSET_MASK;
            if at == 0 {
                continue;
            }
            if !at.is_multiple_of(cluster) {
                return Err(Qcow2Error::Corrupt(format!(
                    "the cluster at guest offset {guest} is at an unaligned offset {at}"
                )));
            }
            self.add(Extent {
                start: at,
                len: cluster,
                kind: Kind::Data { guest },
            })?;
        }
        Ok(())
    }

    fn decompress(&self, input: &[u8], at: u64) -> Result<Vec<u8>, Qcow2Error> {
        let header = self.header_ref()?;
        let cluster = header.cluster() as usize;
        let bad = |why: String| {
            Qcow2Error::Corrupt(format!(
                "the compressed cluster at {at} does not inflate: {why}"
            ))
        };
        let mut out = vec![0_u8; cluster];
        match header.compression {
            Compression::Deflate => {
                let mut inflate = flate2::Decompress::new(false);
                inflate
                    .decompress(input, &mut out, flate2::FlushDecompress::Finish)
                    .map_err(|e| bad(e.to_string()))?;
                if inflate.total_out() != cluster as u64 {
                    return Err(bad(format!("{} bytes, not {cluster}", inflate.total_out())));
                }
            }
            Compression::Zstd => {
                let mut decoder =
                    zstd::stream::raw::Decoder::new().map_err(|e| bad(e.to_string()))?;
                let mut src = zstd::stream::raw::InBuffer::around(input);
                let mut dst = zstd::stream::raw::OutBuffer::around(&mut out[..]);
                loop {
                    let before = (src.pos(), dst.pos());
                    zstd::stream::raw::Operation::run(&mut decoder, &mut src, &mut dst)
                        .map_err(|e| bad(e.to_string()))?;
                    if dst.pos() == cluster || (src.pos(), dst.pos()) == before {
                        break;
                    }
                }
                if dst.pos() != cluster {
                    return Err(bad(format!("{} bytes, not {cluster}", dst.pos())));
                }
            }
        }
        Ok(out)
    }

    /// The stream ended: what is still missing makes the image truncated.
    ///
    /// # Errors
    /// [`Qcow2Error::Truncated`], and what finishing a compressed cluster
    /// the stream ended in raises.
    pub fn finish(mut self) -> Result<(S, Converted), Qcow2Error> {
        if self.header.is_none() {
            return Err(Qcow2Error::Truncated(format!(
                "it ends in its header, after {} bytes",
                self.pos
            )));
        }
        // A compressed cluster's sector count may run past the file's end.
        let active = std::mem::take(&mut self.active);
        for a in active {
            if matches!(a.extent.kind, Kind::Compressed { .. }) {
                self.complete(a.extent, a.buf)?;
            } else {
                return Err(self.truncated(&a.extent));
            }
        }
        if let Some(extent) = self.future.values().next() {
            return Err(self.truncated(extent));
        }
        Ok((self.sink, self.done))
    }

    fn truncated(&self, extent: &Extent) -> Qcow2Error {
        Qcow2Error::Truncated(format!(
            "its tables point past its end (offset {}, {} bytes, the image has {})",
            extent.start, extent.len, self.pos
        ))
    }
}

/// Writes `bytes` at guest offset `at`, dropping what lies past the
/// virtual size.
fn write_clipped<S: Sink>(
    sink: &mut S,
    done: &mut Converted,
    at: u64,
    bytes: &[u8],
) -> Result<(), Qcow2Error> {
    if at >= done.virtual_size {
        return Ok(());
    }
    let n = bytes.len().min((done.virtual_size - at) as usize);
    sink.write_at(at, &bytes[..n]).map_err(Qcow2Error::Write)?;
    done.written += n as u64;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::path::Path;
    use std::process::Command;

    /// A disk in memory.
    struct VecSink(Vec<u8>);

    impl Sink for &mut VecSink {
        fn write_at(&mut self, offset: u64, data: &[u8]) -> std::io::Result<()> {
            let end = offset as usize + data.len();
            if self.0.len() < end {
                self.0.resize(end, 0);
            }
            self.0[offset as usize..end].copy_from_slice(data);
            Ok(())
        }
    }

    fn qemu_img(args: &[&str]) {
        let out = Command::new("qemu-img").args(args).output().unwrap();
        assert!(out.status.success(), "qemu-img {args:?}: {out:?}");
    }

    /// Converts `path` as the stream would carry it, in `chunk`-byte pieces.
    fn stream(path: &Path, chunk: usize, spool: usize) -> Result<(Vec<u8>, Converted), Qcow2Error> {
        let bytes = std::fs::read(path).unwrap();
        let mut disk = VecSink(Vec::new());
        let mut writer = Qcow2Writer::new(&mut disk, spool);
        for piece in bytes.chunks(chunk.max(1)) {
            writer.feed(piece)?;
        }
        let (_, done) = writer.finish()?;
        disk.0.resize(done.virtual_size as usize, 0);
        Ok((disk.0, done))
    }

    /// The raw bytes `qemu-img convert -O raw` makes of `path`.
    fn reference(dir: &Path, path: &Path) -> Vec<u8> {
        let raw = dir.join("reference.raw");
        qemu_img(&[
            "convert",
            "-O",
            "raw",
            path.to_str().unwrap(),
            raw.to_str().unwrap(),
        ]);
        std::fs::read(raw).unwrap()
    }

    /// A raw disk of data and holes: (is data, length in KiB) pieces,
    /// filled from a seed.
    fn raw_disk(pieces: &[(bool, usize)], seed: u64) -> Vec<u8> {
        let mut state = seed | 1;
        let mut out = Vec::new();
        for (data, kib) in pieces {
            for _ in 0..kib * 1024 {
                out.push(if *data {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    // Half-compressible: runs of repeated bytes and noise.
                    if state.is_multiple_of(3) {
                        b'x'
                    } else {
                        state as u8
                    }
                } else {
                    0
                });
            }
        }
        out
    }

    fn convert(dir: &Path, raw: &[u8], options: &str, compress: bool) -> std::path::PathBuf {
        let input = dir.join("in.raw");
        std::fs::write(&input, raw).unwrap();
        let output = dir.join("out.qcow2");
        let _ = std::fs::remove_file(&output);
        let mut args = vec!["convert", "-f", "raw", "-O", "qcow2", "-o", options];
        if compress {
            args.push("-c");
        }
        args.extend([input.to_str().unwrap(), output.to_str().unwrap()]);
        qemu_img(&args);
        output
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        #[test]
        fn any_image_qemu_img_makes_streams_to_the_bytes_qemu_img_reads(
            pieces in prop::collection::vec((any::<bool>(), 1_usize..300), 1..8),
            cluster_bits in 9_u32..=21,
            compress in any::<bool>(),
            zstd in any::<bool>(),
            v2 in any::<bool>(),
            chunk in 1_usize..200_000,
            // (1-byte pieces included: `chunk` shrinks towards them.)
            seed in any::<u64>(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let raw = raw_disk(&pieces, seed);
            let mut options = format!("cluster_size={}", 1_u64 << cluster_bits);
            if v2 {
                options.push_str(",compat=0.10");
            } else if zstd {
                options.push_str(",compression_type=zstd");
            }
            let image = convert(dir.path(), &raw, &options, compress);
            // What qemu-img writes needs a window of a few clusters.
            let window = (16_usize << cluster_bits).max(256 << 10);
            let (written, done) = stream(&image, chunk, window).unwrap();
            prop_assert_eq!(written.len(), raw.len());
            prop_assert!(written == reference(dir.path(), &image));
            prop_assert!(written == raw);
            prop_assert!(done.spool_peak <= window + SPOOL_RUN, "spool {}", done.spool_peak);
        }
    }

    #[test]
    fn unallocated_and_zero_clusters_are_not_written() {
        let dir = tempfile::tempdir().unwrap();
        let raw = raw_disk(&[(true, 64), (false, 4096), (true, 64)], 7);
        let image = convert(dir.path(), &raw, "cluster_size=65536", false);
        let (written, done) = stream(&image, 65536, 1 << 20).unwrap();
        assert!(written == raw);
        assert_eq!(done.written, 128 * 1024, "only the two data clusters");
        // A zero-flagged cluster (v3): written over data, skipped by us.
        let img = dir.path().join("zero.qcow2");
        qemu_img(&["create", "-f", "qcow2", img.to_str().unwrap(), "1M"]);
        let out = Command::new("qemu-io")
            .args([
                "-c",
                "write -P 0x55 0 64k",
                "-c",
                "write -z 0 64k",
                img.to_str().unwrap(),
            ])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        let (written, done) = stream(&img, 4096, 1 << 20).unwrap();
        assert!(written.iter().all(|b| *b == 0));
        assert_eq!(done.written, 0);
    }

    #[test]
    fn backing_files_external_data_and_encryption_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let base = dir.path().join("base.raw");
        std::fs::write(&base, vec![1_u8; 1 << 20]).unwrap();
        let overlay = dir.path().join("overlay.qcow2");
        qemu_img(&[
            "create",
            "-f",
            "qcow2",
            "-b",
            base.to_str().unwrap(),
            "-F",
            "raw",
            overlay.to_str().unwrap(),
        ]);
        let err = stream(&overlay, 4096, 1 << 20).map(|_| ()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "qcow2 image refused: it has a backing file"
        );
        let data = dir.path().join("data.qcow2");
        let external = dir.path().join("external.raw");
        qemu_img(&[
            "create",
            "-f",
            "qcow2",
            "-o",
            &format!("data_file={}", external.display()),
            data.to_str().unwrap(),
            "1M",
        ]);
        let err = stream(&data, 4096, 1 << 20).map(|_| ()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "qcow2 image refused: it has an external data file"
        );
        // Encrypted: the header's crypt_method set (AES).
        let mut bytes = std::fs::read(&overlay).unwrap();
        bytes[8..20].fill(0);
        bytes[35] = 1;
        let encrypted = dir.path().join("enc.qcow2");
        std::fs::write(&encrypted, &bytes).unwrap();
        let err = stream(&encrypted, 4096, 1 << 20).map(|_| ()).unwrap_err();
        assert_eq!(err.to_string(), "qcow2 image refused: it is encrypted");
    }

    #[test]
    fn a_truncated_image_and_tables_pointing_past_the_end_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        let raw = raw_disk(&[(true, 1024)], 3);
        let image = convert(dir.path(), &raw, "cluster_size=65536", false);
        let bytes = std::fs::read(&image).unwrap();
        let cut = dir.path().join("cut.qcow2");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let err = stream(&cut, 8192, 1 << 20).map(|_| ()).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("qcow2 image is truncated: its tables point past its end"),
            "{err}"
        );
        std::fs::write(&cut, &bytes[..50]).unwrap();
        let err = stream(&cut, 8192, 1 << 20).map(|_| ()).unwrap_err();
        assert!(err.to_string().contains("ends in its header"), "{err}");

        // The first L2 entry, moved far past the file's end.
        let header = Header::parse(&bytes).unwrap();
        let l1 = header.l1_table_offset as usize;
        let l2 = (be64(&bytes, l1) & OFFSET_MASK) as usize;
        let mut bad = bytes.clone();
        let entry = be64(&bad, l2) & !OFFSET_MASK | (1 << 40);
        bad[l2..l2 + 8].copy_from_slice(&entry.to_be_bytes());
        let past = dir.path().join("past.qcow2");
        std::fs::write(&past, &bad).unwrap();
        let err = stream(&past, 8192, 1 << 20).map(|_| ()).unwrap_err();
        assert!(
            err.to_string()
                .contains("point past its end (offset 1099511627776"),
            "{err}"
        );
        // An unaligned cluster, and a compressed one inside the header.
        let mut worse = bytes.clone();
        worse[l2..l2 + 8].copy_from_slice(&((1_u64 << 63) | (512 * 129)).to_be_bytes());
        std::fs::write(&past, &worse).unwrap();
        let err = stream(&past, 8192, 1 << 20).map(|_| ()).unwrap_err();
        assert!(
            err.to_string().contains("at an unaligned offset 66048"),
            "{err}"
        );
        worse[l2..l2 + 8].copy_from_slice(&((1_u64 << 62) | 100).to_be_bytes());
        std::fs::write(&past, &worse).unwrap();
        let err = stream(&past, 8192, 1 << 20).map(|_| ()).unwrap_err();
        assert!(
            err.to_string().contains("points into the header cluster"),
            "{err}"
        );
    }

    /// A v3 image laid out data first, then its L2, then its L1: only the
    /// spool (or tables read ahead) can convert it in one pass.
    fn tables_last(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
        let cluster = 65536_usize;
        let mut file = vec![0_u8; 6 * cluster];
        file[..4].copy_from_slice(&MAGIC);
        file[4..8].copy_from_slice(&3_u32.to_be_bytes());
        file[20..24].copy_from_slice(&16_u32.to_be_bytes());
        file[24..32].copy_from_slice(&(1_u64 << 20).to_be_bytes());
        file[36..40].copy_from_slice(&1_u32.to_be_bytes());
        file[40..48].copy_from_slice(&(3 * cluster as u64).to_be_bytes());
        file[48..56].copy_from_slice(&(4 * cluster as u64).to_be_bytes());
        file[56..60].copy_from_slice(&1_u32.to_be_bytes());
        file[96..100].copy_from_slice(&4_u32.to_be_bytes());
        // Refcounts (16 bits): every cluster used once.
        let table = 4 * cluster;
        file[table..table + 8].copy_from_slice(&(5 * cluster as u64).to_be_bytes());
        for i in 0..6 {
            file[5 * cluster + 2 * i + 1] = 1;
        }
        file[100..104].copy_from_slice(&104_u32.to_be_bytes());
        // Data (cluster 1) → guest cluster 2.
        for (i, b) in file[cluster..2 * cluster].iter_mut().enumerate() {
            *b = (i % 251) as u8;
        }
        let l2 = 2 * cluster;
        file[l2 + 16..l2 + 24].copy_from_slice(&((1_u64 << 63) | cluster as u64).to_be_bytes());
        let l1 = 3 * cluster;
        file[l1..l1 + 8].copy_from_slice(&((1_u64 << 63) | l2 as u64).to_be_bytes());
        let path = dir.join("tables-last.qcow2");
        std::fs::write(&path, &file).unwrap();
        let mut raw = vec![0_u8; 1 << 20];
        raw[2 * cluster..3 * cluster].copy_from_slice(&file[cluster..2 * cluster]);
        (path, raw)
    }

    #[test]
    fn tables_after_their_data_are_spooled_within_a_bound_or_read_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let (image, raw) = tables_last(dir.path());
        // A valid qcow2: qemu-img checks it and reads the same bytes.
        qemu_img(&["check", image.to_str().unwrap()]);
        assert!(reference(dir.path(), &image) == raw);
        let (written, done) = stream(&image, 10_000, 1 << 20).unwrap();
        assert!(written == raw);
        assert!(done.spool_peak >= 65536, "{}", done.spool_peak);
        let err = stream(&image, 10_000, 60_000).map(|_| ()).unwrap_err();
        assert!(
            matches!(err, Qcow2Error::SpoolFull { limit: 60_000 }),
            "{err}"
        );

        // Read ahead: no spool, and the stream must carry the same tables.
        let bytes = std::fs::read(&image).unwrap();
        let preload = |stream_bytes: &[u8]| {
            let mut disk = VecSink(Vec::new());
            let mut writer = Qcow2Writer::new(&mut disk, 0);
            writer.preload(0, &bytes[..65536])?;
            while let Some((at, len)) = writer.unread_tables().first().copied() {
                let table = bytes[at as usize..(at + len) as usize].to_vec();
                writer.preload(at, &table)?;
            }
            writer.feed(stream_bytes)?;
            let (_, done) = writer.finish()?;
            disk.0.resize(1 << 20, 0);
            Ok::<_, Qcow2Error>((disk.0, done))
        };
        let (written, done) = preload(&bytes).unwrap();
        assert!(written == raw);
        assert_eq!(done.spool_peak, 0);
        let mut changed = bytes.clone();
        changed[3 * 65536 + 3] ^= 1;
        let err = preload(&changed).map(|_| ()).unwrap_err();
        assert!(matches!(err, Qcow2Error::Changed(196_608)), "{err}");
    }
}
