//! `ipc-sockets`: Unix domain stream sockets and TCP, and an echo server
//! for the other side on another host.

use ipc_harness::MethodInfo;

fn main() {
    let info = MethodInfo {
        binary: "ipc-sockets",
        about: "Sockets: Unix domain stream sockets (abstract names) and TCP, framed messages; `serve` runs the other side alone, on this host or another",
        long_about: "Each channel is one connected stream socket, framed like a pipe (a 4-byte \
little-endian length, then the payload), one write per message. Variant uds is a Unix domain \
socket through the interprocess crate on a Linux abstract name: no socket file, so a crash \
leaves nothing behind, and no file mode either, so each side checks the other's user \
(SO_PEERCRED) and refuses a stranger. Variant tcp goes over loopback with TCP_NODELAY, and is \
how the same producer and consumer outgrow one machine: run `ipc-sockets serve --variant tcp \
--listen 0.0.0.0:7000` on one host and `ipc-sockets pingpong --variant tcp --connect \
HOST:7000` on the other.\n\n\
Pick a Unix socket for two processes on one machine that want a byte stream with a kernel \
buffer, credentials and fd passing; it costs about what a pipe does. Pick TCP to cross hosts; \
on one host it costs the loopback network stack on top.",
        extension: Some(&ipc_showcase::sockets::EXTENSION),
    };
    // SAFETY: first thing in main, before any thread or fd of this process.
    unsafe { ipc_showcase::method_main(info) }
}
