//! Length-prefixed framing for byte-stream transports (**wire contract**).
//!
//! A frame is a 4-byte little-endian length `n`, then `n` payload bytes. The
//! writer sends both with one `write` (see [`crate::fdstream`]); the reader
//! reads through a buffer so that one system call usually brings one or more
//! whole frames. A header above the channel's maximum is [`Error::Corrupt`]
//! and allocates nothing.

use std::io;

use crate::error::{Error, Result};
use crate::transport::Limit;

/// Bytes in a frame header.
pub const HEADER_LEN: usize = 4;

/// The largest payload a frame can announce.
pub const FRAME_LIMIT: Limit = Limit {
    bytes: u32::MAX as usize,
    name: "the 4-byte length of a frame",
};

/// The header of a `len`-byte message, or [`Error::TooLarge`] above `max`
/// (which `limit` set).
pub fn encode_header(len: usize, max: usize, limit: &'static str) -> Result<[u8; HEADER_LEN]> {
    match u32::try_from(len) {
        Ok(n) if len <= max => Ok(n.to_le_bytes()),
        Ok(_) => Err(Error::TooLarge { len, max, limit }),
        Err(_) => Err(Error::TooLarge {
            len,
            max: max.min(FRAME_LIMIT.bytes),
            limit: FRAME_LIMIT.name,
        }),
    }
}

/// The payload length a header announces, or [`Error::Corrupt`] above `max`.
pub fn decode_header(header: [u8; HEADER_LEN], max: usize) -> Result<usize> {
    let len = u32::from_le_bytes(header) as usize;
    if len > max {
        return Err(Error::Corrupt(format!(
            "frame header announces {len} bytes, above the maximum of {max} (is the peer speaking this wire format?)"
        )));
    }
    Ok(len)
}

/// Maps the io errors that mean "the peer is gone" to [`Error::Disconnected`].
pub fn stream_error(what: &str, e: io::Error) -> Error {
    match e.kind() {
        io::ErrorKind::BrokenPipe
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted => Error::Disconnected,
        io::ErrorKind::WouldBlock => Error::Empty,
        _ => Error::io(what, e),
    }
}

const INITIAL_BUFFER: usize = 64 * 1024;

/// Reads whole frames from a byte stream through a buffer it owns.
#[derive(Debug)]
pub struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max: usize,
}

impl FrameReader {
    /// A reader for frames of at most `max` payload bytes.
    pub fn new(max: usize) -> Self {
        FrameReader {
            buf: vec![0; INITIAL_BUFFER.min(HEADER_LEN + max).max(HEADER_LEN)],
            start: 0,
            end: 0,
            max,
        }
    }

    /// The largest payload accepted.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Whether a whole frame is already buffered, so no read is needed.
    pub fn has_frame(&self) -> bool {
        matches!(self.frame_len(), Ok(Some(_)))
    }

    /// Bytes buffered but not yet returned.
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// The payload length of the buffered frame if it is whole.
    fn frame_len(&self) -> Result<Option<usize>> {
        let avail = self.end - self.start;
        if avail < HEADER_LEN {
            return Ok(None);
        }
        let mut header = [0; HEADER_LEN];
        header.copy_from_slice(&self.buf[self.start..self.start + HEADER_LEN]);
        let len = decode_header(header, self.max)?;
        Ok((avail >= HEADER_LEN + len).then_some(len))
    }

    /// Returns the next frame's payload, calling `read` (one `read(2)` into the
    /// slice it is given) as often as needed. `read` returning `Ok(0)` means the
    /// peer closed the stream ([`Error::Disconnected`]); returning `WouldBlock`
    /// makes this return [`Error::Empty`] and keeps any partial frame for the
    /// next call; `TimedOut` becomes [`Error::Timeout`].
    pub fn read_frame(
        &mut self,
        mut read: impl FnMut(&mut [u8]) -> io::Result<usize>,
    ) -> Result<&[u8]> {
        loop {
            if let Some(len) = self.frame_len()? {
                let from = self.start + HEADER_LEN;
                self.start = from + len;
                return Ok(&self.buf[from..from + len]);
            }
            self.make_room()?;
            match read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(Error::Disconnected),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Err(Error::Timeout),
                Err(e) => return Err(stream_error("read a frame", e)),
            }
        }
    }

    /// Ensures the buffer has room after `end` for the rest of the current
    /// frame (or at least a header), compacting and growing as needed.
    fn make_room(&mut self) -> Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let avail = self.end - self.start;
        let need = if avail >= HEADER_LEN {
            let mut header = [0; HEADER_LEN];
            header.copy_from_slice(&self.buf[self.start..self.start + HEADER_LEN]);
            HEADER_LEN + decode_header(header, self.max)?
        } else {
            HEADER_LEN
        };
        if self.buf.len() - self.start < need || self.end == self.buf.len() {
            self.buf.copy_within(self.start..self.end, 0);
            self.start = 0;
            self.end = avail;
        }
        if self.buf.len() < need {
            // Exactly what the frame needs: never more than one frame of the
            // maximum, whatever the allocator's growth policy.
            self.buf.reserve_exact(need - self.buf.len());
            self.buf.resize(need, 0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake stream handing out `data` at most `chunk` bytes per read, then
    /// EOF (or, with `open`, "nothing more yet").
    fn stream(
        data: Vec<u8>,
        chunk: usize,
        open: bool,
    ) -> impl FnMut(&mut [u8]) -> io::Result<usize> {
        let mut pos = 0;
        move |buf: &mut [u8]| {
            let n = chunk.min(buf.len()).min(data.len() - pos);
            if n == 0 && open {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            buf[..n].copy_from_slice(&data[pos..pos + n]);
            pos += n;
            Ok(n)
        }
    }

    fn framed(msgs: &[Vec<u8>], max: usize) -> Vec<u8> {
        let mut out = Vec::new();
        for m in msgs {
            out.extend_from_slice(&encode_header(m.len(), max, "test").expect("fits"));
            out.extend_from_slice(m);
        }
        out
    }

    #[test]
    fn frames_survive_any_chunking() {
        let msgs: Vec<Vec<u8>> = (0..50).map(|i| vec![i as u8; i * 37 % 300]).collect();
        let bytes = framed(&msgs, 1000);
        for chunk in [1, 3, 4, 5, 64, 4096] {
            let mut fr = FrameReader::new(1000);
            let mut read = stream(bytes.clone(), chunk, false);
            for m in &msgs {
                assert_eq!(
                    fr.read_frame(&mut read).expect("frame"),
                    &m[..],
                    "chunk {chunk}"
                );
            }
            assert!(fr.read_frame(&mut read).expect_err("end").is_disconnected());
        }
    }

    #[test]
    fn frames_larger_than_the_initial_buffer_grow_it() {
        let msgs = vec![vec![7u8; 200_000], vec![], vec![1, 2, 3]];
        let bytes = framed(&msgs, 1 << 20);
        let mut fr = FrameReader::new(1 << 20);
        let mut read = stream(bytes, 10_000, false);
        for m in &msgs {
            assert_eq!(fr.read_frame(&mut read).expect("frame"), &m[..]);
        }
    }

    #[test]
    fn a_header_above_the_maximum_is_corrupt_and_allocates_nothing() {
        let mut fr = FrameReader::new(100);
        let before = fr.buf.len();
        let mut read = stream(u32::MAX.to_le_bytes().to_vec(), 4, false);
        assert!(matches!(fr.read_frame(&mut read), Err(Error::Corrupt(_))));
        assert_eq!(fr.buf.len(), before);
    }

    #[test]
    fn oversize_headers_name_their_limit() {
        assert!(matches!(
            encode_header(11, 10, "the option"),
            Err(Error::TooLarge {
                len: 11,
                max: 10,
                limit: "the option"
            })
        ));
        assert!(matches!(
            encode_header(1 << 33, usize::MAX, "the option"),
            Err(Error::TooLarge { max, limit, .. }) if max == u32::MAX as usize && limit == FRAME_LIMIT.name
        ));
    }

    #[test]
    fn partial_frames_wait_for_the_rest() {
        let bytes = framed(&[vec![9; 10]], 100);
        let mut fr = FrameReader::new(100);
        let mut read = stream(bytes[..7].to_vec(), 100, true);
        assert!(matches!(fr.read_frame(&mut read), Err(Error::Empty)));
        let mut rest = stream(bytes[7..].to_vec(), 100, true);
        assert_eq!(fr.read_frame(&mut rest).expect("frame"), &[9; 10]);
    }
}

/// Properties over generated input: whatever the messages and however the
/// stream cuts them, they come back whole; whatever the bytes, the reader
/// never panics, never returns more than the maximum and never holds a
/// buffer larger than one frame of the maximum needs.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Hands out `data` in the given chunk sizes (cycling), then EOF.
    fn chunked(data: Vec<u8>, chunks: Vec<usize>) -> impl FnMut(&mut [u8]) -> io::Result<usize> {
        let (mut pos, mut i) = (0, 0);
        move |buf: &mut [u8]| {
            let want = chunks[i % chunks.len()].max(1);
            i += 1;
            let n = want.min(buf.len()).min(data.len() - pos);
            buf[..n].copy_from_slice(&data[pos..pos + n]);
            pos += n;
            Ok(n)
        }
    }

    proptest! {
        #[test]
        fn any_messages_cut_anywhere_come_back_whole(
            msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..40),
            chunks in proptest::collection::vec(1usize..700, 1..8),
        ) {
            let max = 300;
            let mut bytes = Vec::new();
            for m in &msgs {
                bytes.extend_from_slice(&encode_header(m.len(), max, "test").expect("fits"));
                bytes.extend_from_slice(m);
            }
            let mut fr = FrameReader::new(max);
            let mut read = chunked(bytes, chunks);
            for m in &msgs {
                prop_assert_eq!(fr.read_frame(&mut read).expect("a frame"), m.as_slice());
            }
            prop_assert!(matches!(fr.read_frame(&mut read), Err(Error::Disconnected)));
        }

        #[test]
        fn any_bytes_are_frames_or_an_error_and_never_more_than_the_maximum(
            bytes in proptest::collection::vec(any::<u8>(), 0..2000),
            chunks in proptest::collection::vec(1usize..300, 1..5),
            max in prop_oneof![0usize..512, 60_000usize..200_000],
            lie in any::<Option<u32>>(),
        ) {
            // Sometimes the stream opens with a header that announces more
            // than it will ever send (up to the maximum).
            let mut bytes = bytes;
            if let Some(lie) = lie {
                let len = lie as usize % (max + 1);
                bytes.splice(0..0, (len as u32).to_le_bytes());
            }
            let mut fr = FrameReader::new(max);
            let mut read = chunked(bytes, chunks);
            let bound = HEADER_LEN + max;
            loop {
                match fr.read_frame(&mut read) {
                    Ok(frame) => prop_assert!(frame.len() <= max),
                    Err(Error::Disconnected) => break,
                    Err(Error::Corrupt(_)) => break,
                    Err(e) => prop_assert!(false, "unexpected {e}"),
                }
                prop_assert!(fr.buf.capacity() <= bound, "buffer of {} for max {max}", fr.buf.capacity());
            }
            prop_assert!(fr.buf.capacity() <= bound);
        }

        #[test]
        fn a_header_decodes_to_its_length_or_is_refused(len in any::<u32>(), max in any::<u32>()) {
            let header = len.to_le_bytes();
            match decode_header(header, max as usize) {
                Ok(n) => prop_assert!(n == len as usize && n <= max as usize),
                Err(Error::Corrupt(_)) => prop_assert!(len > max),
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
    }
}
