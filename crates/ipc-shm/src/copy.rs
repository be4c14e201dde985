//! Copies into and out of the ring, around one stall of `memcpy` on AMD.
//!
//! glibc's `memcpy` moves large blocks with `rep movsb` on CPUs that make
//! it fast (ERMS, FSRM). On AMD EPYC (family 25, Zen 3, measured here) that
//! instruction runs 15-20 times slower when the destination lies 1 to 31
//! bytes past the source modulo 4 KiB: 1.3-1.8 GB/s against 23-33 GB/s for
//! 64 KiB blocks (each load waits on a store whose address only looks the
//! same to the CPU). The ring's frames do not stay put against the pages: a
//! 64 KiB message moves the next frame 8 bytes further along them, so the
//! copy in and the copy out each meet that window in 3 frames of 512, which
//! then cost as much as 50 others. In the window a loop of 16-byte SSE2
//! moves copies instead (14-27 GB/s in the same test); everywhere else, and
//! on other architectures, `memcpy` does. Measured with `shm_floor` (the
//! README has the figures); whether Intel's `rep movsb` has a window of its
//! own was not measured.

/// The copies below this size do not use `rep movsb` (glibc uses vector
/// moves for them), so they go to `memcpy` whatever their addresses.
const LARGE: usize = 2048;

/// How far past the source (modulo 4 KiB) a destination is in the window.
const WINDOW: usize = 32;

/// Copies `len` bytes from `src` to `dst`.
///
/// # Safety
///
/// As for [`std::ptr::copy_nonoverlapping`]: `src` readable and `dst`
/// writable for `len` bytes, the two not overlapping (no alignment needed).
#[inline(always)]
pub(crate) unsafe fn copy(src: *const u8, dst: *mut u8, len: usize) {
    #[cfg(target_arch = "x86_64")]
    if len >= LARGE && in_window(src, dst) {
        // SAFETY: passed on from our caller.
        unsafe { copy_by_vectors(src, dst, len) };
        return;
    }
    // SAFETY: passed on from our caller.
    unsafe { std::ptr::copy_nonoverlapping(src, dst, len) }
}

/// Whether `dst` lies 1 to 31 bytes past `src`, modulo 4 KiB.
#[inline(always)]
fn in_window(src: *const u8, dst: *mut u8) -> bool {
    let ahead = (dst as usize).wrapping_sub(src as usize) & 4095;
    ahead.wrapping_sub(1) < WINDOW - 1
}

/// `copy` with 16-byte unaligned SSE2 moves, 64 bytes a turn.
///
/// # Safety
///
/// As for [`copy`].
#[cfg(target_arch = "x86_64")]
#[cold]
#[inline(never)]
unsafe fn copy_by_vectors(src: *const u8, dst: *mut u8, len: usize) {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_storeu_si128};
    let mut at = 0;
    while at + 64 <= len {
        // SAFETY: [at, at + 64) lies within the len bytes our caller vouches
        // for on both sides; the moves are unaligned ones, and SSE2 is part
        // of every x86_64 CPU.
        unsafe {
            let s = src.add(at) as *const __m128i;
            let d = dst.add(at) as *mut __m128i;
            let (a, b) = (_mm_loadu_si128(s), _mm_loadu_si128(s.add(1)));
            let (c, e) = (_mm_loadu_si128(s.add(2)), _mm_loadu_si128(s.add(3)));
            _mm_storeu_si128(d, a);
            _mm_storeu_si128(d.add(1), b);
            _mm_storeu_si128(d.add(2), c);
            _mm_storeu_si128(d.add(3), e);
        }
        at += 64;
    }
    // SAFETY: the rest, under 64 bytes, within the same bounds.
    unsafe { std::ptr::copy_nonoverlapping(src.add(at), dst.add(at), len - at) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_offset_and_length_copies_exactly() {
        let src: Vec<u8> = (0..3 * 4096).map(|i| (i * 7 + 3) as u8).collect();
        let mut dst = vec![0u8; 4 * 4096];
        // Destinations 0 to 47 bytes past the source modulo 4 KiB (the
        // window and either side of it), at lengths around the threshold
        // and the 64-byte turn.
        for ahead in 0..48usize {
            let shift = (ahead + src.as_ptr() as usize).wrapping_sub(dst.as_ptr() as usize) & 4095;
            assert_eq!(
                in_window(src.as_ptr(), dst[shift..].as_mut_ptr()),
                (1..32).contains(&ahead)
            );
            for len in [
                0,
                1,
                63,
                64,
                65,
                LARGE - 1,
                LARGE,
                LARGE + 1,
                LARGE + 63,
                8192,
            ] {
                dst.fill(0);
                // SAFETY: shift + len fits dst (shift < 4096, len <= 8192),
                // len fits src; the two are separate buffers.
                unsafe { copy(src.as_ptr(), dst.as_mut_ptr().add(shift), len) };
                assert_eq!(
                    &dst[shift..shift + len],
                    &src[..len],
                    "len {len}, ahead {ahead}"
                );
                assert!(
                    dst[..shift].iter().all(|&b| b == 0),
                    "wrote before, len {len}"
                );
                assert!(
                    dst[shift + len..].iter().all(|&b| b == 0),
                    "wrote past, len {len}"
                );
            }
        }
    }

    #[test]
    fn the_window_is_one_to_thirty_one_bytes_ahead() {
        let base = 0x10_000usize as *const u8;
        let at = |d: usize| (base as usize + d) as *mut u8;
        assert!(!in_window(base, at(0)));
        assert!(in_window(base, at(1)));
        assert!(in_window(base, at(31)));
        assert!(!in_window(base, at(32)));
        assert!(in_window(base, at(4096 + 8)));
        assert!(!in_window(base, at(4096 - 8)));
    }
}
