//! A shared-memory ring whose words and data a hostile peer rewrote, used
//! by an honest consumer and producer (see `ipc_shm::ring::fuzz`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    ipc_shm::ring::fuzz::use_image(data);
});
