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
        let (value, used) = bincode_limited(bytes)
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

/// bincode's decoding of `bytes` with a read limit of the smallest power of
/// two that holds them (at least 1 KiB): a length inside the message that
/// claims more than that is refused before anything is allocated for it,
/// so no message makes the decoder allocate more than twice its own size.
/// (Without a limit, a lying length allocates whatever it says; bincode
/// takes the limit as a constant, hence one call per power of two.)
#[cfg(feature = "bincode")]
fn bincode_limited<T: DeserializeOwned>(
    bytes: &[u8],
) -> std::result::Result<(T, usize), bincode::error::DecodeError> {
    use bincode::config::standard;
    use bincode::serde::decode_from_slice;
    macro_rules! limited {
        ($($bits:literal)*) => {{
            let need = bytes.len().max(1).next_power_of_two();
            $(
                if need <= 1usize << $bits {
                    return decode_from_slice(bytes, standard().with_limit::<{ 1usize << $bits }>());
                }
            )*
            decode_from_slice(bytes, standard().with_limit::<{ usize::MAX }>())
        }};
    }
    limited!(10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40)
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

/// Properties over generated input: every value comes back as it went, and
/// no input makes a decoder panic.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    enum Shape {
        Empty,
        Point { x: i64, y: i64 },
        Named(String, Vec<u8>),
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    struct Task {
        id: u64,
        name: String,
        payload: Vec<u8>,
        tags: Vec<Option<u16>>,
        shape: Shape,
        ratio: f32,
    }

    fn shape() -> impl Strategy<Value = Shape> {
        prop_oneof![
            Just(Shape::Empty),
            (any::<i64>(), any::<i64>()).prop_map(|(x, y)| Shape::Point { x, y }),
            (".{0,20}", proptest::collection::vec(any::<u8>(), 0..50))
                .prop_map(|(s, b)| Shape::Named(s, b)),
        ]
    }

    fn task() -> impl Strategy<Value = Task> {
        (
            any::<u64>(),
            ".{0,40}",
            proptest::collection::vec(any::<u8>(), 0..200),
            proptest::collection::vec(any::<Option<u16>>(), 0..20),
            shape(),
            any::<f32>().prop_filter("NaN is not equal to itself", |f| !f.is_nan()),
        )
            .prop_map(|(id, name, payload, tags, shape, ratio)| Task {
                id,
                name,
                payload,
                tags,
                shape,
                ratio,
            })
    }

    fn round_trip<C: Codec>(value: &Task) -> Result<Task> {
        let mut bytes = Vec::new();
        C::encode(value, &mut bytes)?;
        C::decode(&bytes)
    }

    proptest! {
        #[test]
        fn postcard_gives_back_every_value(t in task()) {
            prop_assert_eq!(round_trip::<Postcard>(&t).expect("round trip"), t);
        }

        #[test]
        fn postcard_decodes_any_bytes_to_a_value_or_corrupt(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            match Postcard::decode::<Task>(&bytes) {
                Ok(_) | Err(Error::Corrupt(_)) => {}
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
    }

    /// Found by the property below: a length that lies made bincode
    /// allocate what it said, and the process abort.
    #[cfg(feature = "bincode")]
    #[test]
    fn a_bincode_length_of_a_terabyte_is_corrupt_not_an_allocation() {
        // Varint 253 then a u64: 2^40 bytes of Vec<u8>, in a 9-byte message.
        let lying = [253, 0, 0, 0, 0, 0, 1, 0, 0];
        assert!(matches!(
            Bincode::decode::<Vec<u8>>(&lying),
            Err(Error::Corrupt(_))
        ));
    }

    #[cfg(feature = "bincode")]
    proptest! {
        #[test]
        fn bincode_gives_back_every_value(t in task()) {
            prop_assert_eq!(round_trip::<Bincode>(&t).expect("round trip"), t);
        }

        #[test]
        fn bincode_decodes_any_bytes_to_a_value_or_corrupt(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
            match Bincode::decode::<Task>(&bytes) {
                Ok(_) | Err(Error::Corrupt(_)) => {}
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }
    }
}
