//! The byte-stream frame decoder on any bytes, cut anywhere: it returns
//! frames no larger than the maximum, or an error, and never holds more
//! than one frame of the maximum.
#![no_main]

use ipc_core::framing::{FrameReader, HEADER_LEN};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 3 {
        return;
    }
    // The first two bytes choose the maximum (up to 64 KiB), the third how
    // the stream is cut; the rest is the stream.
    let max = u16::from_le_bytes([data[0], data[1]]) as usize;
    let chunk = (data[2] as usize).max(1);
    let stream = &data[3..];
    let mut pos = 0;
    let mut reader = FrameReader::new(max);
    loop {
        let got = reader.read_frame(|buf: &mut [u8]| {
            let n = chunk.min(buf.len()).min(stream.len() - pos);
            buf[..n].copy_from_slice(&stream[pos..pos + n]);
            pos += n;
            Ok(n)
        });
        match got {
            Ok(frame) => assert!(frame.len() <= max),
            Err(_) => break,
        }
        assert!(reader.buffered() <= HEADER_LEN + max);
    }
});
