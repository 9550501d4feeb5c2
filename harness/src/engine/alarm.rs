//! Precise wake-ups for open-loop sends. tokio's timer wheel ticks every millisecond and rounds a deadline
//! up to the next tick, so a device sleeping until its slot leaves on average about 1 ms late: at CoAP
//! latencies of tens of microseconds that lag, not the server, would be the headline. Sends are woken
//! instead by one high-resolution timer: a Linux `timerfd` armed to the nearest deadline of every device
//! and read through the runtime's reactor (no extra thread, no spinning). When it fires, the one task that
//! reads it wakes every device that is due; they then run on that worker. Elsewhere than Linux, or when
//! no `timerfd` can be made, [`Alarms`] falls back to tokio's sleep.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// The run's shared timer. Dropping it stops its driver task.
pub struct Alarms {
    inner: Option<Arc<Inner>>,
    driver: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Alarms {
    fn drop(&mut self) {
        if let Some(d) = &self.driver {
            d.abort();
        }
    }
}

/// One device's alarm: at most one deadline at a time.
pub struct Alarm {
    inner: Option<Arc<Inner>>,
    slot: Arc<Slot>,
    /// The deadline already in the timer's queue.
    queued: Option<Instant>,
}

#[derive(Default)]
struct Slot {
    waker: Mutex<Option<Waker>>,
}

struct Entry {
    at: Instant,
    slot: Arc<Slot>,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.at == other.at
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.at.cmp(&other.at)
    }
}

struct Queue {
    heap: BinaryHeap<Reverse<Entry>>,
    /// The deadline the timer is armed for, if any.
    armed: Option<Instant>,
}

struct Inner {
    queue: Mutex<Queue>,
    #[cfg(target_os = "linux")]
    fd: tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
}

impl Alarms {
    /// Starts the timer on the current runtime (falls back to tokio's sleep when it cannot).
    pub fn start() -> Alarms {
        match Inner::new() {
            Some(inner) => {
                let inner = Arc::new(inner);
                let driver = tokio::spawn(drive(inner.clone()));
                Alarms {
                    inner: Some(inner),
                    driver: Some(driver),
                }
            }
            None => Alarms::coarse(),
        }
    }

    /// tokio's own timer (1 ms ticks), for comparison and where no precise timer exists.
    pub fn coarse() -> Alarms {
        Alarms {
            inner: None,
            driver: None,
        }
    }

    /// Whether wake-ups come from the precise timer.
    pub fn is_precise(&self) -> bool {
        self.inner.is_some()
    }

    pub fn alarm(&self) -> Alarm {
        Alarm {
            inner: self.inner.clone(),
            slot: Arc::default(),
            queued: None,
        }
    }
}

impl Alarm {
    /// Completes at `at` (or at once when it has passed). Cancel-safe: a dropped wait leaves the deadline
    /// queued, and waiting again for the same deadline does not queue it twice.
    pub async fn until(&mut self, at: Instant) {
        let Some(inner) = self.inner.clone() else {
            tokio::time::sleep_until(at.into()).await;
            return;
        };
        poll_fn(|cx| self.poll_until(&inner, at, cx)).await
    }

    fn poll_until(&mut self, inner: &Inner, at: Instant, cx: &mut Context<'_>) -> Poll<()> {
        if Instant::now() >= at {
            return Poll::Ready(());
        }
        {
            let mut w = self.slot.waker.lock().expect("alarm lock");
            if !w.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                *w = Some(cx.waker().clone());
            }
        }
        if self.queued != Some(at) {
            self.queued = Some(at);
            inner.queue_at(at, self.slot.clone());
        }
        Poll::Pending
    }
}

impl Inner {
    #[cfg(target_os = "linux")]
    fn new() -> Option<Inner> {
        use std::os::fd::FromRawFd;
        // SAFETY: timerfd_create has no preconditions; a non-negative result is a new descriptor we own.
        let raw = unsafe {
            libc::timerfd_create(
                libc::CLOCK_MONOTONIC,
                libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
            )
        };
        if raw < 0 {
            return None;
        }
        // SAFETY: `raw` is a valid descriptor nobody else owns.
        let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
        // SAFETY: an OwnedFd keeps its one descriptor open until it is dropped with the AsyncFd.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
        }
        .ok()?;
        Some(Inner {
            queue: Mutex::new(Queue {
                heap: BinaryHeap::new(),
                armed: None,
            }),
            fd,
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn new() -> Option<Inner> {
        None
    }

    fn queue_at(&self, at: Instant, slot: Arc<Slot>) {
        let mut q = self.queue.lock().expect("alarm queue lock");
        q.heap.push(Reverse(Entry { at, slot }));
        if q.armed.is_none_or(|a| at < a) {
            q.armed = Some(at);
            self.arm(at);
        }
    }

    /// Sets the timer to fire at `at` (at once when it has passed).
    #[cfg(target_os = "linux")]
    fn arm(&self, at: Instant) {
        use std::os::fd::AsRawFd;
        // A zero value would disarm the timer: a deadline already passed fires after 1 ns.
        let d = at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1));
        let spec = libc::itimerspec {
            it_interval: libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: libc::timespec {
                tv_sec: d.as_secs() as libc::time_t,
                tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
            },
        };
        // SAFETY: a valid timerfd we own and a valid itimerspec; the old value is not asked for.
        unsafe {
            libc::timerfd_settime(self.fd.as_raw_fd(), 0, &spec, std::ptr::null_mut());
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn arm(&self, _at: Instant) {}

    /// Wakes every alarm that is due and arms the timer for the next one.
    fn fire(&self) {
        let mut due = Vec::new();
        {
            let mut q = self.queue.lock().expect("alarm queue lock");
            let now = Instant::now();
            while q.heap.peek().is_some_and(|e| e.0.at <= now) {
                due.push(q.heap.pop().expect("peeked").0.slot);
            }
            q.armed = q.heap.peek().map(|e| e.0.at);
            if let Some(at) = q.armed {
                self.arm(at);
            }
        }
        for slot in due {
            if let Some(w) = slot.waker.lock().expect("alarm lock").take() {
                w.wake();
            }
        }
    }
}

#[cfg(target_os = "linux")]
async fn drive(inner: Arc<Inner>) {
    use std::os::fd::AsRawFd;
    loop {
        let Ok(mut guard) = inner.fd.readable().await else {
            return;
        };
        let mut expirations = 0u64;
        // SAFETY: reading 8 bytes into a u64 from a timerfd we own.
        let n = unsafe {
            libc::read(
                inner.fd.as_raw_fd(),
                (&mut expirations as *mut u64).cast(),
                8,
            )
        };
        // Readiness is edge-triggered and tracked by tick: an expiry after this read is not lost.
        guard.clear_ready();
        if n > 0 {
            inner.fire();
        }
    }
}

#[cfg(not(target_os = "linux"))]
async fn drive(_inner: Arc<Inner>) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    /// Alarms wake in deadline order, none before its deadline, and a deadline already passed at once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn alarms_wake_at_their_deadlines_in_order() {
        let alarms = Alarms::start();
        let t0 = Instant::now();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for (i, ms) in [30u64, 10, 20, 0].into_iter().enumerate() {
            let mut a = alarms.alarm();
            let tx = tx.clone();
            tokio::spawn(async move {
                let at = t0 + Duration::from_millis(ms);
                a.until(at).await;
                let late = Instant::now().checked_duration_since(at);
                tx.send((i, late.is_some())).unwrap();
            });
        }
        drop(tx);
        let mut order = Vec::new();
        while let Some((i, on_or_after)) = rx.recv().await {
            assert!(on_or_after, "alarm {i} woke before its deadline");
            order.push(i);
        }
        assert_eq!(order, vec![3, 1, 2, 0]);
        assert!(alarms.is_precise(), "Linux has timerfd");
    }

    /// A wait dropped (another branch of a select won) and resumed for the same deadline still wakes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dropped_wait_resumes() {
        let alarms = Alarms::start();
        let mut a = alarms.alarm();
        let at = Instant::now() + Duration::from_millis(20);
        {
            // Polled once, then dropped: the deadline is queued with this task's waker.
            let wait = a.until(at);
            tokio::pin!(wait);
            poll_fn(|cx| {
                let _ = wait.as_mut().poll(cx);
                Poll::Ready(())
            })
            .await;
        }
        a.until(at).await;
        assert!(Instant::now() >= at);
    }
}
