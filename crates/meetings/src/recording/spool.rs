//! A track's spool: the frames received while recording, on local disk until the
//! recording is muxed. One file per track, a sequence of records: the frame's
//! timestamp on the recording's timeline (µs, `u64` big-endian), a flags byte (bit 0:
//! key frame), the payload's length (`u32` big-endian), the payload.

use std::fs::File;
use std::io::{BufReader, ErrorKind, Read};
use std::path::Path;

use tokio::io::{AsyncWriteExt, BufWriter};

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
    /// A new, empty spool at `path`.
    pub async fn create(path: &Path) -> std::io::Result<SpoolWriter> {
        let file = tokio::fs::File::create(path).await?;
        Ok(SpoolWriter {
            file: BufWriter::new(file),
        })
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

/// Reads a track's spool back, frame by frame (blocking).
#[derive(Debug)]
pub struct SpoolReader {
    file: BufReader<File>,
}

impl SpoolReader {
    pub fn open(path: &Path) -> std::io::Result<SpoolReader> {
        Ok(SpoolReader {
            file: BufReader::new(File::open(path)?),
        })
    }

    /// The next frame; `None` at the end. A record cut short is an error.
    pub fn next_frame(&mut self) -> std::io::Result<Option<SpoolFrame>> {
        let mut head = [0u8; 13];
        match self.file.read_exact(&mut head[..1]) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::UnexpectedEof => return Ok(None),
            Err(e) => return Err(e),
        }
        self.file.read_exact(&mut head[1..])?;
        let mut timestamp = [0u8; 8];
        timestamp.copy_from_slice(&head[..8]);
        let mut len = [0u8; 4];
        len.copy_from_slice(&head[9..]);
        let len = usize::try_from(u32::from_be_bytes(len))
            .map_err(|_| std::io::Error::new(ErrorKind::InvalidData, "frame too large"))?;
        let mut payload = vec![0u8; len];
        self.file.read_exact(&mut payload)?;
        Ok(Some(SpoolFrame {
            timestamp_us: u64::from_be_bytes(timestamp),
            key: head[8] & 1 != 0,
            payload,
        }))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[tokio::test]
    async fn frames_come_back_as_spooled_and_a_cut_record_is_an_error() {
        let dir = std::env::temp_dir().join(format!("spool-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.spool");
        let mut writer = SpoolWriter::create(&path).await.unwrap();
        writer.append(5, true, b"abc").await.unwrap();
        writer.append(40_000, false, b"").await.unwrap();
        writer.finish().await.unwrap();
        let mut reader = SpoolReader::open(&path).unwrap();
        assert_eq!(
            reader.next_frame().unwrap(),
            Some(SpoolFrame {
                timestamp_us: 5,
                key: true,
                payload: b"abc".to_vec()
            })
        );
        assert_eq!(reader.next_frame().unwrap().unwrap().timestamp_us, 40_000);
        assert_eq!(reader.next_frame().unwrap(), None);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 5]).unwrap();
        let mut cut = SpoolReader::open(&path).unwrap();
        cut.next_frame().unwrap();
        assert!(cut.next_frame().is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
