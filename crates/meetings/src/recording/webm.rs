//! The WebM side of a recording: what a track's first frames say about it (the video
//! codec and size from a key frame, the Opus channel count from a packet's TOC byte),
//! and the muxing of the spooled tracks into one WebM file with `webm-iterable`.
//!
//! The file: the EBML header (`webm`, version 4), one Segment (its size patched in once
//! written), `Info` (1 ms timestamp scale, the duration, the meeting's name as title),
//! `Tracks` (one entry per recorded track, numbered from 1, named after its
//! participant), then Clusters of SimpleBlocks in timestamp order: a new Cluster at a
//! key frame once the current one is 5 s long, and always before a block would be 30 s
//! past the Cluster's start (a block's offset is 16 bits of milliseconds); without any
//! video track, at any block once 5 s long. No Cues: the
//! file plays from the start and demuxers seek by scanning.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use webm_iterable::WebmWriter;
use webm_iterable::WriteOptions;
use webm_iterable::matroska_spec::{Master, MatroskaSpec, SimpleBlock};

use super::spool::{SpoolFrame, SpoolReader};

/// Microseconds per Matroska tick (`TimestampScale` 1,000,000 ns).
const TICK_US: u64 = 1000;
/// A Cluster this long (ms) ends at the next key frame.
const CLUSTER_SPAN_MS: u64 = 5_000;
/// A Cluster never holds a block further than this (ms) from its start.
const CLUSTER_MAX_MS: u64 = 30_000;

/// A video codec the recorder writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum VideoCodec {
    Vp8,
    Vp9,
}

impl VideoCodec {
    /// Matroska's `CodecID`.
    pub fn codec_id(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "V_VP8",
            VideoCodec::Vp9 => "V_VP9",
        }
    }

    /// The name `recordings.video_codec` keeps.
    pub fn name(self) -> &'static str {
        match self {
            VideoCodec::Vp8 => "VP8",
            VideoCodec::Vp9 => "VP9",
        }
    }
}

/// What a video key frame says: its codec and, when the header carries it, its size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFrameInfo {
    pub codec: VideoCodec,
    pub size: Option<(u16, u16)>,
}

/// Reads a key frame's codec and size: a VP8 key frame (frame tag with the key bit
/// clear, start code `9d 01 2a`, 14-bit width and height little-endian at bytes 6..10)
/// or a VP9 key frame (frame marker `10`, sync code `49 83 42`, then the colour config
/// and the size, 16 bits each, minus one). `None` for anything else.
pub fn key_frame_info(frame: &[u8]) -> Option<KeyFrameInfo> {
    if let Some(info) = vp8_key_frame(frame) {
        return Some(info);
    }
    vp9_key_frame(frame)
}

fn vp8_key_frame(frame: &[u8]) -> Option<KeyFrameInfo> {
    let head = frame.first_chunk::<10>()?;
    if head[0] & 1 != 0 || head[3..6] != [0x9d, 0x01, 0x2a] {
        return None;
    }
    let width = u16::from_le_bytes([head[6], head[7]]) & 0x3fff;
    let height = u16::from_le_bytes([head[8], head[9]]) & 0x3fff;
    Some(KeyFrameInfo {
        codec: VideoCodec::Vp8,
        size: (width > 0 && height > 0).then_some((width, height)),
    })
}

/// Bits of a byte string, most significant first.
struct Bits<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Bits<'_> {
    fn read(&mut self, n: u32) -> Option<u32> {
        let mut value = 0u32;
        for _ in 0..n {
            let byte = *self.bytes.get(self.at / 8)?;
            let bit = (byte >> (7 - (self.at % 8))) & 1;
            value = (value << 1) | u32::from(bit);
            self.at += 1;
        }
        Some(value)
    }
}

fn vp9_key_frame(frame: &[u8]) -> Option<KeyFrameInfo> {
    let mut bits = Bits {
        bytes: frame,
        at: 0,
    };
    if bits.read(2)? != 0b10 {
        return None;
    }
    let low = bits.read(1)?;
    let high = bits.read(1)?;
    let profile = (high << 1) | low;
    if profile == 3 {
        bits.read(1)?;
    }
    if bits.read(1)? == 1 {
        // show_existing_frame: no header of its own.
        return None;
    }
    let frame_type = bits.read(1)?;
    bits.read(2)?; // show_frame, error_resilient_mode
    if frame_type != 0 || bits.read(24)? != 0x49_83_42 {
        return None;
    }
    if profile >= 2 {
        bits.read(1)?; // ten_or_twelve_bit
    }
    let color_space = bits.read(3)?;
    if color_space != 7 {
        bits.read(1)?; // color_range
        if profile == 1 || profile == 3 {
            bits.read(3)?; // subsampling_x, subsampling_y, reserved_zero
        }
    } else if profile == 1 || profile == 3 {
        bits.read(1)?;
    }
    let width = bits.read(16)? + 1;
    let height = bits.read(16)? + 1;
    let size = u16::try_from(width).ok().zip(u16::try_from(height).ok());
    Some(KeyFrameInfo {
        codec: VideoCodec::Vp9,
        size,
    })
}

/// The channel count an Opus packet's TOC byte says (its stereo bit).
pub fn opus_channels(packet: &[u8]) -> u8 {
    match packet.first() {
        Some(toc) if toc & 0b100 != 0 => 2,
        _ => 1,
    }
}

/// The Opus identification header Matroska keeps as the track's `CodecPrivate` (RFC
/// 7845 section 5.1): version 1, the channels, no pre-skip, 48 kHz, no gain, mapping
/// family 0.
pub fn opus_head(channels: u8) -> Vec<u8> {
    let mut head = Vec::with_capacity(19);
    head.extend_from_slice(b"OpusHead");
    head.push(1);
    head.push(channels);
    head.extend_from_slice(&0u16.to_le_bytes());
    head.extend_from_slice(&48_000u32.to_le_bytes());
    head.extend_from_slice(&0i16.to_le_bytes());
    head.push(0);
    head
}

/// What one track of the file is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum TrackKind {
    Video {
        codec: VideoCodec,
        /// Width and height; 0 x 0 when the key frame did not say.
        size: (u16, u16),
    },
    Audio {
        channels: u8,
    },
}

/// One recorded track and its spool.
#[derive(Debug, Clone)]
pub struct MuxTrack {
    /// Its `TrackNumber` and `TrackUID` (1, 2, ...).
    pub number: u64,
    /// Its `Name`.
    pub name: String,
    pub kind: TrackKind,
    /// Its frames, in timestamp order (microseconds on the recording's timeline).
    pub spool: std::path::PathBuf,
    /// First and last frame timestamps (µs) and how many frames.
    pub first_us: u64,
    pub last_us: u64,
    pub frames: u64,
}

impl MuxTrack {
    /// When its last frame ends (µs): the last timestamp plus the mean frame interval.
    fn end_us(&self) -> u64 {
        let span = self.last_us.saturating_sub(self.first_us);
        let interval = match self.frames {
            0 | 1 => 0,
            n => span / (n - 1),
        };
        self.last_us.saturating_add(interval)
    }
}

/// What the muxing wrote.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Muxed {
    /// Bytes of the file.
    pub size: u64,
    /// The `Duration` written, in milliseconds.
    pub duration_ms: f64,
}

/// Why a file could not be written.
#[derive(Debug, thiserror::Error)]
pub enum MuxError {
    #[error("nothing was recorded: no participant sent audio or video")]
    Empty,
    #[error("the recording's file could not be written: {0}")]
    Io(#[from] std::io::Error),
    #[error("the recording's file could not be encoded: {0}")]
    Encode(String),
}

fn encode(e: impl std::fmt::Display) -> MuxError {
    MuxError::Encode(e.to_string())
}

fn track_entry(track: &MuxTrack) -> MatroskaSpec {
    let mut children = vec![
        MatroskaSpec::TrackNumber(track.number),
        MatroskaSpec::TrackUID(track.number),
        MatroskaSpec::FlagLacing(0),
        MatroskaSpec::Name(track.name.clone()),
    ];
    match &track.kind {
        TrackKind::Video { codec, size } => {
            children.push(MatroskaSpec::TrackType(1));
            children.push(MatroskaSpec::CodecID(codec.codec_id().to_owned()));
            children.push(MatroskaSpec::Video(Master::Full(vec![
                MatroskaSpec::PixelWidth(u64::from(size.0)),
                MatroskaSpec::PixelHeight(u64::from(size.1)),
            ])));
        }
        TrackKind::Audio { channels } => {
            children.push(MatroskaSpec::TrackType(2));
            children.push(MatroskaSpec::CodecID("A_OPUS".to_owned()));
            children.push(MatroskaSpec::CodecPrivate(opus_head(*channels)));
            // 80 ms, as RFC 7845 advises for seeking.
            children.push(MatroskaSpec::SeekPreRoll(80_000_000));
            children.push(MatroskaSpec::Audio(Master::Full(vec![
                MatroskaSpec::SamplingFrequency(48_000.0),
                MatroskaSpec::Channels(u64::from(*channels)),
            ])));
        }
    }
    MatroskaSpec::TrackEntry(Master::Full(children))
}

/// Writes `tracks` (their spools merged in timestamp order, the earliest frame at 0) to
/// a new WebM file at `out`, titled `title`. Blocking: run it off the async threads.
pub fn mux(tracks: &[MuxTrack], title: &str, out: &Path) -> Result<Muxed, MuxError> {
    let tracks: Vec<&MuxTrack> = tracks.iter().filter(|t| t.frames > 0).collect();
    let Some(origin) = tracks.iter().map(|t| t.first_us).min() else {
        return Err(MuxError::Empty);
    };
    let end = tracks.iter().map(|t| t.end_us()).max().unwrap_or(origin);
    let duration_ms = end.saturating_sub(origin) as f64 / TICK_US as f64;

    let file = File::create(out)?;
    let mut writer = WebmWriter::new(BufWriter::new(file));
    writer
        .write(&MatroskaSpec::Ebml(Master::Full(vec![
            MatroskaSpec::EbmlVersion(1),
            MatroskaSpec::EbmlReadVersion(1),
            MatroskaSpec::EbmlMaxIdLength(4),
            MatroskaSpec::EbmlMaxSizeLength(8),
            MatroskaSpec::DocType("webm".to_owned()),
            MatroskaSpec::DocTypeVersion(4),
            MatroskaSpec::DocTypeReadVersion(2),
        ])))
        .map_err(encode)?;
    // The Segment is opened with an unknown size (so the writer streams its children)
    // and its size written in at the end: 4 bytes of id, then 8 bytes of size.
    let segment_at = writer.get_mut().stream_position()?;
    writer
        .write_advanced(
            &MatroskaSpec::Segment(Master::Start),
            WriteOptions::is_unknown_sized_element(),
        )
        .map_err(encode)?;
    writer
        .write(&MatroskaSpec::Info(Master::Full(vec![
            MatroskaSpec::TimestampScale(TICK_US * 1000),
            MatroskaSpec::MuxingApp("Tavern".to_owned()),
            MatroskaSpec::WritingApp("Tavern meetings recorder".to_owned()),
            MatroskaSpec::Title(title.to_owned()),
            MatroskaSpec::Duration(duration_ms),
        ])))
        .map_err(encode)?;
    writer
        .write(&MatroskaSpec::Tracks(Master::Full(
            tracks.iter().map(|t| track_entry(t)).collect(),
        )))
        .map_err(encode)?;

    // A k-way merge of the spools, each already in timestamp order.
    let mut readers = Vec::with_capacity(tracks.len());
    let mut next: BinaryHeap<Reverse<(u64, usize)>> = BinaryHeap::new();
    let mut pending: Vec<Option<SpoolFrame>> = Vec::with_capacity(tracks.len());
    for (i, track) in tracks.iter().enumerate() {
        let mut reader = SpoolReader::open(&track.spool)?;
        let first = reader.next_frame()?;
        if let Some(frame) = &first {
            next.push(Reverse((frame.timestamp_us, i)));
        }
        pending.push(first);
        readers.push(reader);
    }
    let audio_only = tracks
        .iter()
        .all(|t| matches!(t.kind, TrackKind::Audio { .. }));
    let mut cluster: Option<u64> = None;
    while let Some(Reverse((_, i))) = next.pop() {
        let (Some(frame), Some(reader), Some(track)) = (
            pending.get_mut(i).and_then(Option::take),
            readers.get_mut(i),
            tracks.get(i),
        ) else {
            continue;
        };
        let ms = frame.timestamp_us.saturating_sub(origin) / TICK_US;
        let is_video = matches!(track.kind, TrackKind::Video { .. });
        let key = frame.key || !is_video;
        let start_new = match cluster {
            None => true,
            Some(start) => {
                let span = ms.saturating_sub(start);
                // Long enough: at a video key frame (any block without video).
                span >= CLUSTER_MAX_MS
                    || (span >= CLUSTER_SPAN_MS && key && (is_video || audio_only))
            }
        };
        if start_new {
            if cluster.is_some() {
                writer
                    .write(&MatroskaSpec::Cluster(Master::End))
                    .map_err(encode)?;
            }
            writer
                .write(&MatroskaSpec::Cluster(Master::Start))
                .map_err(encode)?;
            writer.write(&MatroskaSpec::Timestamp(ms)).map_err(encode)?;
            cluster = Some(ms);
        }
        let offset = ms.saturating_sub(cluster.unwrap_or(ms));
        let offset = i16::try_from(offset).map_err(encode)?;
        let block = SimpleBlock::new_uncheked(
            &frame.payload,
            track.number,
            offset,
            false,
            None,
            false,
            key,
        );
        writer.write(&MatroskaSpec::from(block)).map_err(encode)?;
        if let Some(frame) = reader.next_frame()? {
            next.push(Reverse((frame.timestamp_us, i)));
            if let Some(slot) = pending.get_mut(i) {
                *slot = Some(frame);
            }
        }
    }
    if cluster.is_some() {
        writer
            .write(&MatroskaSpec::Cluster(Master::End))
            .map_err(encode)?;
    }
    let mut file = writer
        .into_inner()
        .map_err(encode)?
        .into_inner()
        .map_err(|e| MuxError::Io(e.into_error()))?;
    let size = file.stream_position()?;
    let body = size.saturating_sub(segment_at + 12);
    let mut vint = [0u8; 8];
    vint[0] = 0x01;
    vint[1..].copy_from_slice(&body.to_be_bytes()[1..]);
    file.seek(SeekFrom::Start(segment_at + 4))?;
    file.write_all(&vint)?;
    file.sync_all()?;
    Ok(Muxed { size, duration_ms })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_vp8_key_frame_says_its_size_and_a_delta_frame_nothing() {
        let mut key = vec![0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a];
        key.extend_from_slice(&640u16.to_le_bytes());
        key.extend_from_slice(&(360u16 | 0x4000).to_le_bytes());
        key.extend_from_slice(&[0; 8]);
        assert_eq!(
            key_frame_info(&key),
            Some(KeyFrameInfo {
                codec: VideoCodec::Vp8,
                size: Some((640, 360))
            })
        );
        let mut delta = key.clone();
        delta[0] |= 1;
        assert_eq!(vp8_key_frame(&delta), None);
        assert_eq!(key_frame_info(&[1, 2, 3]), None);
    }

    #[test]
    fn a_vp9_key_frame_says_its_size() {
        // Profile 0: marker 10, profile bits 00, show_existing 0, key 0, show 1, error
        // resilient 0; sync code; colour space 2 (3 bits), range 0; 1279 and 719.
        let mut bits: Vec<u8> = Vec::new();
        let mut push = |value: u32, n: u32| {
            for i in (0..n).rev() {
                bits.push(((value >> i) & 1) as u8);
            }
        };
        push(0b10, 2);
        push(0, 2);
        push(0, 1);
        push(0, 1);
        push(1, 1);
        push(0, 1);
        push(0x49_83_42, 24);
        push(2, 3);
        push(0, 1);
        push(1279, 16);
        push(719, 16);
        let bytes: Vec<u8> = bits
            .chunks(8)
            .map(|c| {
                c.iter()
                    .enumerate()
                    .fold(0u8, |b, (i, bit)| b | (bit << (7 - i)))
            })
            .collect();
        assert_eq!(
            key_frame_info(&bytes),
            Some(KeyFrameInfo {
                codec: VideoCodec::Vp9,
                size: Some((1280, 720))
            })
        );
    }

    #[test]
    fn the_opus_head_is_nineteen_bytes_with_the_channels() {
        let head = opus_head(2);
        assert_eq!(head.len(), 19);
        assert_eq!(&head[..8], b"OpusHead");
        assert_eq!(head[9], 2);
        assert_eq!(opus_channels(&[0b0000_0100]), 2);
        assert_eq!(opus_channels(&[0b0000_0000]), 1);
        assert_eq!(opus_channels(&[]), 1);
    }
}
