//! The device an image is written to, so that a failed write never leaves
//! a disk that looks installed: the first MiB (where partition tables and
//! boot loaders live) is held in memory and written only by
//! [`DiskSink::commit`], after everything else is on the device, synced,
//! and the checksum verified; [`DiskSink::wipe`] instead zeroes the first
//! and the last MiB, so no partition table claims what was half written.
//!
//! Invariants: nothing is written past the device's end (an image too big
//! is an error before its bytes land there); contiguous writes are
//! gathered into [`GATHER`]-byte writes; memory is the held MiB and one
//! gathered write.

use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::Arc;

use super::qcow2::Sink;
use crate::progress::Progress;

/// The bytes held back until the image is verified.
pub const HEAD: u64 = 1 << 20;
/// The most bytes gathered into one write.
const GATHER: usize = 1 << 20;

pub struct DiskSink {
    file: std::fs::File,
    size: u64,
    head: Vec<u8>,
    gathered_at: u64,
    gathered: Vec<u8>,
    touched: bool,
    progress: Arc<Progress>,
}

impl DiskSink {
    /// Opens `device` for writing.
    ///
    /// # Errors
    /// When it cannot be opened or its size read.
    pub fn open(device: &Path, progress: Arc<Progress>) -> std::io::Result<DiskSink> {
        let mut file = std::fs::OpenOptions::new().write(true).open(device)?;
        // A block device's length is where seeking to its end lands.
        let size = std::io::Seek::seek(&mut file, std::io::SeekFrom::End(0))?;
        Ok(DiskSink {
            file,
            size,
            head: Vec::new(),
            gathered_at: 0,
            gathered: Vec::with_capacity(GATHER),
            touched: false,
            progress,
        })
    }

    /// The device's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if !self.gathered.is_empty() {
            self.touched = true;
            self.file.write_all_at(&self.gathered, self.gathered_at)?;
            self.gathered.clear();
        }
        Ok(())
    }

    /// Writes the held first MiB after the rest is synced: the disk is
    /// installed only now.
    ///
    /// # Errors
    /// The device's write or sync errors.
    pub fn commit(mut self) -> std::io::Result<()> {
        self.flush()?;
        self.file.sync_all()?;
        self.file.write_all_at(&self.head, 0)?;
        self.file.sync_all()
    }

    /// Zeroes the first and last MiB when anything was written, so that
    /// nothing half-written looks like an installed disk.
    pub fn wipe(mut self) {
        self.gathered.clear();
        if !self.touched {
            return;
        }
        let zeros = vec![0_u8; HEAD.min(self.size) as usize];
        let tail = self.size.saturating_sub(HEAD);
        let wiped = self
            .file
            .write_all_at(&zeros, 0)
            .and_then(|()| self.file.write_all_at(&zeros, tail))
            .and_then(|()| self.file.sync_all());
        match wiped {
            Ok(()) => tracing::warn!("the image's partial write was wiped (first and last MiB)"),
            Err(e) => tracing::error!(error = %e, "could not wipe the partial write"),
        }
    }
}

impl Sink for &mut DiskSink {
    fn write_at(&mut self, offset: u64, mut data: &[u8]) -> std::io::Result<()> {
        let end = offset + data.len() as u64;
        if end > self.size {
            return Err(std::io::Error::other(format!(
                "the image is larger than the device ({} bytes)",
                self.size
            )));
        }
        let mut offset = offset;
        if offset < HEAD {
            let n = ((HEAD - offset) as usize).min(data.len());
            let upto = offset as usize + n;
            if self.head.len() < upto {
                self.head.resize(upto, 0);
            }
            self.head[offset as usize..upto].copy_from_slice(&data[..n]);
            data = &data[n..];
            offset += n as u64;
        }
        if data.is_empty() {
            self.progress.wrote(end);
            return Ok(());
        }
        if offset != self.gathered_at + self.gathered.len() as u64
            || self.gathered.len() + data.len() > GATHER
        {
            self.flush()?;
            self.gathered_at = offset;
        }
        if data.len() >= GATHER {
            self.touched = true;
            self.file.write_all_at(data, offset)?;
            self.gathered_at = offset + data.len() as u64;
        } else {
            self.gathered.extend_from_slice(data);
        }
        self.progress.wrote(end);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device(len: u64) -> (tempfile::NamedTempFile, DiskSink) {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), vec![0xee_u8; len as usize]).unwrap();
        let sink = DiskSink::open(file.path(), Arc::new(Progress::default())).unwrap();
        (file, sink)
    }

    #[test]
    fn the_first_mib_lands_only_on_commit() {
        let (file, mut sink) = device(3 * HEAD);
        let mut s = &mut sink;
        s.write_at(0, &[1_u8; 4096]).unwrap();
        s.write_at(HEAD + 10, &[2_u8; 100]).unwrap();
        s.write_at(HEAD + 110, &[3_u8; 100]).unwrap();
        sink.flush().unwrap();
        let disk = std::fs::read(file.path()).unwrap();
        assert_eq!(disk[0], 0xee, "held back");
        assert_eq!(disk[HEAD as usize + 10], 2);
        assert_eq!(disk[HEAD as usize + 209], 3);
        sink.commit().unwrap();
        let disk = std::fs::read(file.path()).unwrap();
        assert_eq!(&disk[..4096], &[1_u8; 4096][..]);
        assert_eq!(disk[4096], 0xee, "only what the image had");
    }

    #[test]
    fn a_wipe_clears_both_ends_and_nothing_lands_past_the_device() {
        let (file, mut sink) = device(4 * HEAD);
        let mut s = &mut sink;
        s.write_at(2 * HEAD, &[7_u8; 10]).unwrap();
        let err = s.write_at(4 * HEAD - 5, &[7_u8; 10]).unwrap_err();
        assert!(err.to_string().contains("larger than the device"), "{err}");
        sink.flush().unwrap();
        sink.wipe();
        let disk = std::fs::read(file.path()).unwrap();
        assert!(disk[..HEAD as usize].iter().all(|b| *b == 0));
        assert!(disk[3 * HEAD as usize..].iter().all(|b| *b == 0));
        assert_eq!(disk[2 * HEAD as usize], 7);
    }
}
