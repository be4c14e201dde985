//! Typed messages over any byte transport, through a [`Codec`].
//!
//! ```
//! use ipc_core::codec::{Postcard, TypedReceiver, TypedSender};
//! # use ipc_core::{Receiver, Sender, Result};
//! # #[derive(Default)] struct Loop { buf: Vec<u8>, got: Vec<u8> }
//! # impl Sender for Loop { fn send(&mut self, m: &[u8]) -> Result<()> { self.buf = m.to_vec(); Ok(()) }
//! #   fn try_send(&mut self, m: &[u8]) -> Result<()> { self.send(m) } fn max_message(&self) -> usize { 1 << 20 } }
//! # impl Receiver for Loop { fn recv(&mut self) -> Result<&[u8]> { Ok(&self.buf) }
//! #   fn try_recv(&mut self) -> Result<&[u8]> { Ok(&self.buf) }
//! #   fn recv_timeout(&mut self, _: std::time::Duration) -> Result<&[u8]> { Ok(&self.buf) }
//! #   fn max_message(&self) -> usize { 1 << 20 } }
//! #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
//! struct Task { id: u32, name: String }
//!
//! # let end = Loop::default();
//! // `end` is any byte transport's sender (here a stand-in that is also its receiver).
//! let mut tx: TypedSender<_, Task, Postcard> = TypedSender::new(end);
//! tx.send(&Task { id: 1, name: "task 1".into() })?;
//! let mut rx: TypedReceiver<_, Task, Postcard> = TypedReceiver::new(tx.into_inner());
//! assert_eq!(rx.recv()?, Task { id: 1, name: "task 1".into() });
//! # Ok::<(), ipc_core::Error>(())
//! ```

use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::transport::{Receiver, Sender};

/// Turns values into bytes and back.
pub trait Codec {
    /// The codec's name, for messages.
    const NAME: &'static str;
    /// Appends the encoding of `value` to `out`.
    fn encode<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<()>;
    /// Decodes one value from the whole of `bytes`.
    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T>;
}

/// The default codec: postcard, compact and maintained.
#[derive(Debug, Clone, Copy, Default)]
pub struct Postcard;

impl Codec for Postcard {
    const NAME: &'static str = "postcard";

    fn encode<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<()> {
        let bytes = postcard::to_stdvec(value).map_err(|e| Error::Encode(e.to_string()))?;
        out.extend_from_slice(&bytes);
        Ok(())
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        postcard::from_bytes(bytes)
            .map_err(|e| Error::Corrupt(format!("postcard cannot decode the message: {e}")))
    }
}

/// The bincode 2 codec (cargo feature `bincode`), beside postcard.
#[cfg(feature = "bincode")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Bincode;

#[cfg(feature = "bincode")]
impl Codec for Bincode {
    const NAME: &'static str = "bincode";

    fn encode<T: Serialize>(value: &T, out: &mut Vec<u8>) -> Result<()> {
        let bytes = bincode::serde::encode_to_vec(value, bincode::config::standard())
            .map_err(|e| Error::Encode(e.to_string()))?;
        out.extend_from_slice(&bytes);
        Ok(())
    }

    fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T> {
        let (value, used) =
            bincode::serde::decode_from_slice(bytes, bincode::config::standard())
                .map_err(|e| Error::Corrupt(format!("bincode cannot decode the message: {e}")))?;
        if used != bytes.len() {
            return Err(Error::Corrupt(format!(
                "bincode message has {} bytes after its value",
                bytes.len() - used
            )));
        }
        Ok(value)
    }
}

/// Sends values of type `T` over byte sender `S`, encoded with codec `C`.
#[derive(Debug)]
pub struct TypedSender<S, T, C = Postcard> {
    inner: S,
    buf: Vec<u8>,
    _types: PhantomData<fn(&T, C)>,
}

impl<S: Sender, T: Serialize, C: Codec> TypedSender<S, T, C> {
    /// Wraps a byte sender.
    pub fn new(inner: S) -> Self {
        TypedSender {
            inner,
            buf: Vec::new(),
            _types: PhantomData,
        }
    }

    /// Encodes and sends `value` (see [`Sender::send`]).
    pub fn send(&mut self, value: &T) -> Result<()> {
        self.buf.clear();
        C::encode(value, &mut self.buf)?;
        self.inner.send(&self.buf)
    }

    /// Encodes and sends `value` if there is room now (see [`Sender::try_send`]).
    pub fn try_send(&mut self, value: &T) -> Result<()> {
        self.buf.clear();
        C::encode(value, &mut self.buf)?;
        self.inner.try_send(&self.buf)
    }

    /// The byte sender inside.
    pub fn into_inner(self) -> S {
        self.inner
    }
}

/// Receives values of type `T` from byte receiver `R`, decoded with codec `C`.
#[derive(Debug)]
pub struct TypedReceiver<R, T, C = Postcard> {
    inner: R,
    _types: PhantomData<fn() -> (T, C)>,
}

impl<R: Receiver, T: DeserializeOwned, C: Codec> TypedReceiver<R, T, C> {
    /// Wraps a byte receiver.
    pub fn new(inner: R) -> Self {
        TypedReceiver {
            inner,
            _types: PhantomData,
        }
    }

    /// Waits for and decodes the next value (see [`Receiver::recv`]).
    pub fn recv(&mut self) -> Result<T> {
        C::decode(self.inner.recv()?)
    }

    /// Decodes the next value if one is waiting (see [`Receiver::try_recv`]).
    pub fn try_recv(&mut self) -> Result<T> {
        C::decode(self.inner.try_recv()?)
    }

    /// Waits at most `timeout` for the next value (see [`Receiver::recv_timeout`]).
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<T> {
        C::decode(self.inner.recv_timeout(timeout)?)
    }

    /// The byte receiver inside.
    pub fn into_inner(self) -> R {
        self.inner
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Task {
        id: u64,
        name: String,
        data: Vec<u8>,
    }

    fn round_trip<C: Codec>() {
        let task = Task {
            id: 42,
            name: "task 42".into(),
            data: vec![1, 2, 3],
        };
        let mut buf = Vec::new();
        C::encode(&task, &mut buf).expect("encode");
        assert_eq!(C::decode::<Task>(&buf).expect("decode"), task);
        assert!(matches!(
            C::decode::<Task>(&buf[..buf.len() - 1]),
            Err(Error::Corrupt(_))
        ));
        assert!(matches!(
            C::decode::<Task>(&[0xff; 3]),
            Err(Error::Corrupt(_))
        ));
    }

    #[test]
    fn postcard_round_trips_and_rejects_garbage() {
        round_trip::<Postcard>();
    }

    #[cfg(feature = "bincode")]
    #[test]
    fn bincode_round_trips_and_rejects_garbage() {
        round_trip::<Bincode>();
    }
}
