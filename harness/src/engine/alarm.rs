//! Precise wake-ups for open-loop sends. tokio's timer wheel ticks every millisecond and rounds a deadline
//! up to the next tick, so a device sleeping until its slot leaves on average about 1 ms late: at CoAP
//! latencies of tens of microseconds that lag, not the server, would be the headline. Sends are woken
//! instead by one high-resolution timer: a Linux `timerfd` (through `nix`) armed to the nearest deadline of
//! every device and read through the runtime's reactor (no extra thread, no spinning). When it fires, the
//! one task that reads it wakes every device that is due; they then run on that worker.
//!
//! Which deadlines are due and when the timer must fire is [`Schedule`], pure logic over instants passed
//! in: deadlines closer together than [`COALESCE`] share one expiry, and the timer is re-armed only when a
//! new deadline needs it earlier than it is already set (each re-arm is a system call, and a kernel timer
//! reprogrammed). Elsewhere than Linux, or when no `timerfd` can be made, [`Alarms`] falls back to tokio's
//! sleep.

use std::collections::BTreeMap;
use std::future::poll_fn;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

/// Deadlines this close together share one timer expiry, at the latest of them: the earlier ones leave at
/// most this late, and a fleet costs at most one expiry per window however high its rate. Small against
/// the ~50 µs a wake-up takes to reach a device on a busy machine.
pub const COALESCE: Duration = Duration::from_micros(20);

/// Deadlines in order and the one timer that serves them, as pure logic: no clock is read here.
#[derive(Debug)]
pub struct Schedule<K> {
    /// By deadline, then by order of insertion (two devices may share a deadline).
    entries: BTreeMap<(Instant, u64), K>,
    next_seq: u64,
    /// When the timer is set to fire, if it is set.
    armed: Option<Instant>,
    window: Duration,
}

impl<K> Schedule<K> {
    /// An empty schedule whose deadlines within `window` of each other share one expiry.
    pub fn new(window: Duration) -> Self {
        Schedule {
            entries: BTreeMap::new(),
            next_seq: 0,
            armed: None,
            window,
        }
    }

    /// Queues `key` for `at`. Returns when the timer must now fire, if it has to be (re-)armed.
    pub fn insert(&mut self, at: Instant, key: K) -> Option<Instant> {
        self.entries.insert((at, self.next_seq), key);
        self.next_seq += 1;
        self.rearm()
    }

    /// The timer fired at `now`: moves every entry due by then into `due`, earliest first. Returns when
    /// the timer must fire next, if anything is left.
    pub fn fire(&mut self, now: Instant, due: &mut Vec<K>) -> Option<Instant> {
        while let Some(e) = self.entries.first_entry() {
            if e.key().0 > now {
                break;
            }
            due.push(e.remove());
        }
        // The timer is one-shot: once it fired, it is no longer set.
        if self.armed.is_some_and(|a| a <= now) {
            self.armed = None;
        }
        self.rearm()
    }

    /// When the timer should fire for what is queued: at the latest deadline within the window of the
    /// earliest, so that deadlines close together wake once.
    pub fn wake_at(&self) -> Option<Instant> {
        let (&(first, _), _) = self.entries.first_key_value()?;
        let (&(last, _), _) = self
            .entries
            .range(..=(first + self.window, u64::MAX))
            .next_back()?;
        Some(last)
    }

    /// Whether no deadline is queued.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// A timer already set to fire no later than needed picks the new deadline up when it fires (and
    /// re-arms then): only a deadline that needs an earlier expiry reprograms it.
    fn rearm(&mut self) -> Option<Instant> {
        let want = self.wake_at()?;
        if self.armed.is_some_and(|a| a <= want) {
            return None;
        }
        self.armed = Some(want);
        Some(want)
    }
}

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

/// Where the timer finds the task to wake for one alarm.
#[derive(Default)]
struct Slot {
    waker: Mutex<Option<Waker>>,
}

struct Inner {
    schedule: Mutex<Schedule<Arc<Slot>>>,
    #[cfg(target_os = "linux")]
    fd: tokio::io::unix::AsyncFd<nix::sys::timerfd::TimerFd>,
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
        use nix::sys::timerfd::{ClockId, TimerFd, TimerFlags};
        // CLOCK_MONOTONIC is the clock `Instant` reads. A timerfd's expiry gets no timer slack.
        let fd = TimerFd::new(
            ClockId::CLOCK_MONOTONIC,
            TimerFlags::TFD_NONBLOCK | TimerFlags::TFD_CLOEXEC,
        )
        .ok()?;
        // SAFETY: the TimerFd owns its descriptor, closes it only when dropped (with the AsyncFd), and
        // `as_raw_fd` always returns that one descriptor.
        let fd = unsafe {
            tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
        }
        .ok()?;
        Some(Inner {
            schedule: Mutex::new(Schedule::new(COALESCE)),
            fd,
        })
    }

    #[cfg(not(target_os = "linux"))]
    fn new() -> Option<Inner> {
        None
    }

    fn queue_at(&self, at: Instant, slot: Arc<Slot>) {
        let mut s = self.schedule.lock().expect("alarm schedule lock");
        if let Some(wake) = s.insert(at, slot) {
            self.arm(wake);
        }
    }

    /// Sets the timer to fire at `at` (at once when it has passed).
    #[cfg(target_os = "linux")]
    fn arm(&self, at: Instant) {
        use nix::sys::time::TimeSpec;
        use nix::sys::timerfd::{Expiration, TimerSetTimeFlags};
        // A zero value would disarm the timer: a deadline already passed fires after 1 ns.
        let d = at
            .saturating_duration_since(Instant::now())
            .max(Duration::from_nanos(1));
        // Cannot fail on a valid timerfd with a valid, relative, one-shot value.
        let _ = self.fd.get_ref().set(
            Expiration::OneShot(TimeSpec::from_duration(d)),
            TimerSetTimeFlags::empty(),
        );
    }

    #[cfg(not(target_os = "linux"))]
    fn arm(&self, _at: Instant) {}

    /// Wakes every alarm that is due and re-arms the timer for the next one.
    fn fire(&self, due: &mut Vec<Arc<Slot>>) {
        {
            let mut s = self.schedule.lock().expect("alarm schedule lock");
            if let Some(wake) = s.fire(Instant::now(), due) {
                self.arm(wake);
            }
        }
        for slot in due.drain(..) {
            if let Some(w) = slot.waker.lock().expect("alarm lock").take() {
                w.wake();
            }
        }
    }
}

#[cfg(target_os = "linux")]
async fn drive(inner: Arc<Inner>) {
    use std::os::fd::AsRawFd;
    let mut due = Vec::new();
    loop {
        let Ok(mut guard) = inner.fd.readable().await else {
            return;
        };
        // Reads the expiry count so the descriptor is no longer readable; nothing to read (EAGAIN) means
        // a stale readiness, and `fire` then finds nothing due.
        let mut expirations = [0u8; 8];
        let _ = nix::unistd::read(inner.fd.get_ref().as_raw_fd(), &mut expirations);
        // Readiness is edge-triggered and tracked by tick: an expiry after this read is not lost.
        guard.clear_ready();
        inner.fire(&mut due);
    }
}

#[cfg(not(target_os = "linux"))]
async fn drive(_inner: Arc<Inner>) {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// Entries come out in deadline order, ties in insertion order, each exactly once, none early.
    #[test]
    fn fires_due_entries_in_order_once() {
        let t0 = Instant::now();
        let mut s = Schedule::new(Duration::ZERO);
        for (key, at) in [(0, 300), (1, 100), (2, 200), (3, 100), (4, 500)] {
            s.insert(t0 + us(at), key);
        }
        let mut due = Vec::new();
        // A stale wake before the timer expires: nothing due, and the timer stays set for 100.
        assert_eq!(s.fire(t0 + us(99), &mut due), None);
        assert!(due.is_empty(), "nothing is due before its deadline");
        assert_eq!(s.fire(t0 + us(250), &mut due), Some(t0 + us(300)));
        assert_eq!(due, vec![1, 3, 2]);
        due.clear();
        assert_eq!(s.fire(t0 + us(1000), &mut due), None);
        assert_eq!(due, vec![0, 4]);
        assert!(s.is_empty());
    }

    /// Deadlines within the window of the earliest share one expiry, at the latest of them; one just
    /// outside gets its own.
    #[test]
    fn close_deadlines_share_one_wake() {
        let t0 = Instant::now();
        let mut s = Schedule::new(us(20));
        s.insert(t0 + us(100), 'a');
        s.insert(t0 + us(110), 'b');
        s.insert(t0 + us(120), 'c');
        s.insert(t0 + us(121), 'd');
        assert_eq!(s.wake_at(), Some(t0 + us(120)));
        let mut due = Vec::new();
        let next = s.fire(t0 + us(120), &mut due);
        assert_eq!(due, vec!['a', 'b', 'c']);
        assert_eq!(next, Some(t0 + us(121)));
    }

    /// The timer is reprogrammed only when a new deadline needs it earlier than it is set.
    #[test]
    fn rearms_only_for_an_earlier_wake() {
        let t0 = Instant::now();
        let mut s = Schedule::new(us(20));
        assert_eq!(s.insert(t0 + us(500), 0), Some(t0 + us(500)), "first arm");
        assert_eq!(
            s.insert(t0 + us(900), 1),
            None,
            "later: the set timer serves"
        );
        assert_eq!(s.insert(t0 + us(500), 2), None, "same deadline");
        assert_eq!(
            s.insert(t0 + us(510), 3),
            None,
            "within the window: fires at 500 and re-arms then"
        );
        assert_eq!(s.insert(t0 + us(200), 4), Some(t0 + us(200)), "earlier");
        let mut due = Vec::new();
        assert_eq!(s.fire(t0 + us(200), &mut due), Some(t0 + us(510)));
        assert_eq!(due, vec![4]);
        assert_eq!(s.insert(t0 + us(600), 5), None, "armed for 510 already");
    }

    /// A simulated fleet: 10,000 deadlines crowded into about 5 ms, each queued 300 µs ahead of it (as a
    /// device queues its next slot after sending) while the timer runs, the timer firing exactly when
    /// armed. Every deadline fires exactly once, never early, never more than the window late, with far
    /// fewer expiries than deadlines.
    #[test]
    fn every_deadline_fires_once_within_the_window() {
        let t0 = Instant::now();
        let window = us(20);
        let lead = us(300);
        let mut rng = fastrand::Rng::with_seed(7);
        let mut pending: Vec<(Instant, usize)> = (0..2000usize)
            .flat_map(|d| {
                let start = rng.u64(0..1000);
                (0..5u64).map(move |k| (t0 + lead + us(start + 1000 * k), d * 5 + k as usize))
            })
            .collect();
        pending.sort();
        let mut deadline_of = vec![t0; pending.len()];
        for &(at, key) in &pending {
            deadline_of[key] = at;
        }
        let mut s = Schedule::new(window);
        let mut armed: Option<Instant> = None;
        let mut fired = vec![0u32; pending.len()];
        let mut expiries = 0;
        let mut queued = 0;
        loop {
            // The next event: a device queues a deadline, or the timer expires (queuing first on a tie).
            let queue_at = pending.get(queued).map(|p| p.0 - lead);
            match (queue_at, armed) {
                (Some(q), a) if a.is_none_or(|a| q <= a) => {
                    let (at, key) = pending[queued];
                    queued += 1;
                    assert!(at > q);
                    if let Some(w) = s.insert(at, key) {
                        armed = Some(w);
                    }
                }
                (_, Some(now)) => {
                    expiries += 1;
                    let mut due = Vec::new();
                    armed = s.fire(now, &mut due);
                    for key in due {
                        fired[key] += 1;
                        assert!(deadline_of[key] <= now, "fired early");
                        assert!(now - deadline_of[key] <= window, "fired late");
                    }
                }
                (None, None) => break,
                (Some(_), None) => unreachable!("the first arm takes it"),
            }
        }
        assert!(fired.iter().all(|&n| n == 1), "each deadline fires once");
        assert!(s.is_empty());
        assert!(
            expiries < pending.len() / 4,
            "{expiries} expiries for {} crowded deadlines",
            pending.len()
        );
    }

    /// Spread out (a 5,000 req/s fleet of 1,000 devices has slots 91 to 237 µs apart) no two deadlines
    /// merge: no added lag.
    #[test]
    fn spread_deadlines_wake_at_their_own_time() {
        let t0 = Instant::now();
        let mut s = Schedule::new(COALESCE);
        for k in 0..100u64 {
            s.insert(t0 + us(200 * k + 7), k);
        }
        let mut due = Vec::new();
        for k in 0..100u64 {
            assert_eq!(s.wake_at(), Some(t0 + us(200 * k + 7)));
            s.fire(t0 + us(200 * k + 7), &mut due);
            assert_eq!(due, vec![k]);
            due.clear();
        }
    }

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
