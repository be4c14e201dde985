//! The floor under the coroutine transport: a consumer future polled by
//! hand, handed an 8-byte value through a shared cell, nothing else.

use std::cell::Cell;
use std::future::Future;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

/// `count` hand-offs (after `warmup` untimed ones) to a bare coroutine, in
/// samples of `batch` hand-offs each (the clock costs more than one); each
/// sample's mean in nanoseconds, sorted.
pub fn switches(count: u64, warmup: u64, batch: u64) -> Vec<f64> {
    let batch = batch.max(1);
    let slot = Rc::new(Cell::new(None::<u64>));
    let echo = Rc::new(Cell::new(0u64));
    let (s, e) = (Rc::clone(&slot), Rc::clone(&echo));
    let mut consumer = Box::pin(async move {
        loop {
            let v = std::future::poll_fn(|_| match s.take() {
                Some(v) => Poll::Ready(v),
                None => Poll::Pending,
            })
            .await;
            e.set(v);
        }
    });
    let mut cx = Context::from_waker(Waker::noop());
    let _ = consumer.as_mut().poll(&mut cx);
    let mut samples = Vec::new();
    let mut i = 0u64;
    while i < warmup + count {
        let t0 = Instant::now();
        for _ in 0..batch {
            slot.set(Some(i));
            let _ = consumer.as_mut().poll(&mut cx);
            assert_eq!(echo.get(), i, "the coroutine did not take the value");
            i += 1;
        }
        if i > warmup {
            samples.push(t0.elapsed().as_nanos() as f64 / batch as f64);
        }
    }
    samples.sort_by(f64::total_cmp);
    samples
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_bare_coroutine_takes_every_value() {
        let samples = super::switches(10_000, 100, 100);
        assert_eq!(samples.len(), 100);
    }
}
