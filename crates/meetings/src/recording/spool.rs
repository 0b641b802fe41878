//! A track's spool: the frames received while recording, on local disk until the
//! recording is muxed. One file per track: a header (the magic `TVSPOOL1`, the length
//! of what follows as `u32` big-endian, then the track's [`TrackMeta`] as JSON), so a
//! spool says what it holds when a later start finds it left by a crash; then a
//! sequence of records: the frame's timestamp on the recording's timeline (µs, `u64`
//! big-endian), a flags byte (bit 0: key frame), the payload's length (`u32`
//! big-endian), the payload.
//!
//! The file is only ever appended to, so a failed write (a full disk) or a crash can
//! only cut its last record short: the reader ends the spool there, and everything
//! before it is kept.

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read, Seek};
use std::path::Path;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncWriteExt, BufWriter};

use super::webm::TrackKind;

/// The first bytes of every spool.
const MAGIC: &[u8; 8] = b"TVSPOOL1";
/// The most bytes a header's [`TrackMeta`] may take.
const MAX_META: u32 = 64 * 1024;

/// What a spooled track is: everything the muxing needs besides its frames.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackMeta {
    /// Its track number in the file (1, 2, ...).
    pub number: u64,
    /// Its name (`Alice (camera)`).
    pub name: String,
    pub kind: TrackKind,
}

/// One spooled frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpoolFrame {
    pub timestamp_us: u64,
    pub key: bool,
    pub payload: Vec<u8>,
}

/// Appends frames to a track's spool.
#[derive(Debug)]
pub struct SpoolWriter {
    file: BufWriter<tokio::fs::File>,
}

impl SpoolWriter {
    /// A new spool at `path` of the track `meta`, holding no frame yet.
    pub async fn create(path: &Path, meta: &TrackMeta) -> std::io::Result<SpoolWriter> {
        let json = serde_json::to_vec(meta).map_err(std::io::Error::other)?;
        let len = u32::try_from(json.len())
            .ok()
            .filter(|len| *len <= MAX_META)
            .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidInput, "track name too long"))?;
        let file = tokio::fs::File::create(path).await?;
        let mut file = BufWriter::new(file);
        file.write_all(MAGIC).await?;
        file.write_all(&len.to_be_bytes()).await?;
        file.write_all(&json).await?;
        Ok(SpoolWriter { file })
    }

    /// Appends one frame.
    pub async fn append(
        &mut self,
        timestamp_us: u64,
        key: bool,
        payload: &[u8],
    ) -> std::io::Result<()> {
        let len = u32::try_from(payload.len())
            .map_err(|_| std::io::Error::new(ErrorKind::InvalidInput, "frame too large"))?;
        let mut head = [0u8; 13];
        head[..8].copy_from_slice(&timestamp_us.to_be_bytes());
        head[8] = u8::from(key);
        head[9..].copy_from_slice(&len.to_be_bytes());
        self.file.write_all(&head).await?;
        self.file.write_all(payload).await
    }

    /// Writes out what is buffered and closes the file.
    pub async fn finish(mut self) -> std::io::Result<()> {
        self.file.flush().await?;
        self.file.get_mut().sync_all().await
    }
}

/// What a spool holds, read without its payloads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpoolStats {
    /// The first and last frames' timestamps (µs) and how many frames.
    pub first_us: u64,
    pub last_us: u64,
    pub frames: u64,
    /// Whether its last record was cut short (a failed write, a crash) and left out.
    pub cut: bool,
}

/// Reads a track's spool back, frame by frame (blocking).
#[derive(Debug)]
pub struct SpoolReader {
    file: BufReader<File>,
    meta: TrackMeta,
    /// Whether a record cut short ended it.
    cut: bool,
}

/// Reads exactly `buf.len()` bytes; `false` when the file ends first.
fn read_all(file: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    match file.read_exact(buf) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

impl SpoolReader {
    /// Opens the spool at `path` and reads its header; a file that is not a spool (or
    /// whose header was cut short) is `InvalidData`.
    pub fn open(path: &Path) -> std::io::Result<SpoolReader> {
        let mut file = BufReader::new(File::open(path)?);
        let not_a_spool = || std::io::Error::new(ErrorKind::InvalidData, "not a track spool");
        let mut head = [0u8; 12];
        if !read_all(&mut file, &mut head)? || head[..8] != MAGIC[..] {
            return Err(not_a_spool());
        }
        let mut len = [0u8; 4];
        len.copy_from_slice(&head[8..]);
        let len = u32::from_be_bytes(len);
        if len > MAX_META {
            return Err(not_a_spool());
        }
        let mut json = vec![0u8; usize::try_from(len).map_err(|_| not_a_spool())?];
        if !read_all(&mut file, &mut json)? {
            return Err(not_a_spool());
        }
        let meta = serde_json::from_slice(&json).map_err(|_| not_a_spool())?;
        Ok(SpoolReader {
            file,
            meta,
            cut: false,
        })
    }

    /// The spooled track.
    pub fn meta(&self) -> &TrackMeta {
        &self.meta
    }

    /// Whether a record cut short ended the spool (known once read to its end).
    pub fn was_cut(&self) -> bool {
        self.cut
    }

    /// The next record's timestamp, key flag and payload length; `None` at the end (or
    /// at a record cut short).
    fn next_head(&mut self) -> std::io::Result<Option<(u64, bool, u32)>> {
        let mut head = [0u8; 13];
        if self.file.read(&mut head[..1])? == 0 {
            return Ok(None);
        }
        if !read_all(&mut self.file, &mut head[1..])? {
            self.cut = true;
            return Ok(None);
        }
        let mut timestamp = [0u8; 8];
        timestamp.copy_from_slice(&head[..8]);
        let mut len = [0u8; 4];
        len.copy_from_slice(&head[9..]);
        Ok(Some((
            u64::from_be_bytes(timestamp),
            head[8] & 1 != 0,
            u32::from_be_bytes(len),
        )))
    }

    /// The next frame; `None` at the end, or at a record cut short (see
    /// [`SpoolReader::was_cut`]).
    pub fn next_frame(&mut self) -> std::io::Result<Option<SpoolFrame>> {
        let Some((timestamp_us, key, len)) = self.next_head()? else {
            return Ok(None);
        };
        let mut payload = Vec::new();
        // Read as far as the file goes, never trusting the length to allocate.
        (&mut self.file)
            .take(u64::from(len))
            .read_to_end(&mut payload)?;
        if u64::try_from(payload.len()).ok() != Some(u64::from(len)) {
            self.cut = true;
            return Ok(None);
        }
        Ok(Some(SpoolFrame {
            timestamp_us,
            key,
            payload,
        }))
    }

    /// Reads the rest of the spool without its payloads: its frames' span and count.
    pub fn stats(mut self) -> std::io::Result<SpoolStats> {
        let size = self.file.get_ref().metadata()?.len();
        let mut stats = SpoolStats::default();
        while let Some((timestamp_us, _, len)) = self.next_head()? {
            let at = self.file.stream_position()?;
            if at.saturating_add(u64::from(len)) > size {
                self.cut = true;
                break;
            }
            self.file.seek_relative(i64::from(len))?;
            if stats.frames == 0 {
                stats.first_us = timestamp_us;
            }
            stats.last_us = timestamp_us;
            stats.frames += 1;
        }
        stats.cut = self.cut;
        Ok(stats)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn meta() -> TrackMeta {
        TrackMeta {
            number: 1,
            name: "Alice (microphone)".into(),
            kind: TrackKind::Audio { channels: 1 },
        }
    }

    #[tokio::test]
    async fn frames_come_back_as_spooled_and_a_cut_record_ends_the_spool() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.spool");
        let mut writer = SpoolWriter::create(&path, &meta()).await.unwrap();
        writer.append(5, true, b"abc").await.unwrap();
        writer.append(40_000, false, b"").await.unwrap();
        writer.append(80_000, false, b"defgh").await.unwrap();
        writer.finish().await.unwrap();
        let mut reader = SpoolReader::open(&path).unwrap();
        assert_eq!(reader.meta(), &meta());
        assert_eq!(
            reader.next_frame().unwrap(),
            Some(SpoolFrame {
                timestamp_us: 5,
                key: true,
                payload: b"abc".to_vec()
            })
        );
        assert_eq!(reader.next_frame().unwrap().unwrap().timestamp_us, 40_000);
        assert_eq!(reader.next_frame().unwrap().unwrap().payload, b"defgh");
        assert_eq!(reader.next_frame().unwrap(), None);
        assert!(!reader.was_cut());
        let whole = SpoolReader::open(&path).unwrap().stats().unwrap();
        assert_eq!(
            whole,
            SpoolStats {
                first_us: 5,
                last_us: 80_000,
                frames: 3,
                cut: false
            }
        );

        // A write that failed half-way: the last record is cut short, the rest kept.
        let bytes = std::fs::read(&path).unwrap();
        for cut_at in [bytes.len() - 2, bytes.len() - 5 - 7] {
            std::fs::write(&path, &bytes[..cut_at]).unwrap();
            let mut cut = SpoolReader::open(&path).unwrap();
            cut.next_frame().unwrap().unwrap();
            cut.next_frame().unwrap().unwrap();
            assert_eq!(cut.next_frame().unwrap(), None);
            assert!(cut.was_cut());
            let stats = SpoolReader::open(&path).unwrap().stats().unwrap();
            assert_eq!((stats.frames, stats.last_us, stats.cut), (2, 40_000, true));
        }
        // A file that is no spool is refused.
        std::fs::write(&path, b"garbage").unwrap();
        assert_eq!(
            SpoolReader::open(&path).unwrap_err().kind(),
            ErrorKind::InvalidData
        );
    }
}
