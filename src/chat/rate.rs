//! Token buckets: a burst is fine, a steady flood is not.
//!
//! Each socket has a bucket for the frames it sends. Each user has one
//! more, for messages, shared by all of the user's sockets on this
//! instance and by the no-JavaScript form (`UserRates`). Over a limit a
//! socket gets an error frame; a socket that keeps going after many
//! refusals in a row is closed with 1008 "Rate limited".

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How many at once, and how many per second after that.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub burst: f64,
    pub per_second: f64,
}

/// Written `<burst>/<per second>`, as in `30/10`: the form the settings
/// `SOCKET_FRAME_RATE` and `USER_MESSAGE_RATE` take.
impl std::str::FromStr for Rate {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const FORM: &str = "write <burst>/<per second>, as in 30/10: a burst from 1 \
                            and a rate from 0.001, both at most 1000000";
        let (burst, per_second) = s.split_once('/').ok_or(FORM)?;
        // A burst under one would refuse everything; NaN fails every range.
        let number = |v: &str, low: f64| {
            v.trim()
                .parse::<f64>()
                .ok()
                .filter(|n| *n >= low && *n > 0.0 && *n <= 1_000_000.0)
                .ok_or(FORM)
        };
        Ok(Rate {
            burst: number(burst, 1.0)?,
            // Slower than one in a thousand seconds is no rate at all, and
            // its waits would not fit in a `Duration`.
            per_second: number(per_second, 0.001)?,
        })
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.burst, self.per_second)
    }
}

/// Frames one socket may send: joins, leaves and messages alike.
pub const SOCKET_FRAMES: Rate = Rate {
    burst: 30.0,
    per_second: 10.0,
};

/// Messages one user may post, over all of its sockets and the form. The
/// burst is a little above one socket's, so that one tab catching up on a
/// queue of unsent messages is not refused, but a user's many sockets
/// together cannot multiply the per-socket rate. Two a second sustained is
/// far above what a person types and close to what other chat services
/// allow per user; a script wanting more is what this limit is for.
pub const USER_MESSAGES: Rate = Rate {
    burst: 40.0,
    per_second: 2.0,
};

/// Refused frames in a row before the socket is closed.
const STRIKES: u32 = 20;

/// What to do with a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refuse this frame with an error; the socket stays open.
    Refuse,
    /// Refused too often: close the socket.
    Close,
}

/// The tokens of one bucket, refilled lazily when taken from.
#[derive(Debug, Clone, Copy)]
struct Tokens {
    tokens: f64,
    last: Instant,
}

impl Tokens {
    fn full(rate: Rate, now: Instant) -> Self {
        Self {
            tokens: rate.burst,
            last: now,
        }
    }

    fn refill(&mut self, rate: Rate, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * rate.per_second).min(rate.burst);
    }

    /// Takes one token, or says how long until one is there.
    fn take(&mut self, rate: Rate, now: Instant) -> Result<(), Duration> {
        self.refill(rate, now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - self.tokens) / rate.per_second;
        Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX))
    }

    /// Whether the bucket would be full by `now`, which is the same as not
    /// having it at all.
    fn is_full_at(&self, rate: Rate, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens + elapsed * rate.per_second >= rate.burst
    }
}

/// Refusals in a row on one socket.
#[derive(Debug, Default)]
pub struct Strikes(u32);

impl Strikes {
    /// Turns the answer of a bucket into what the socket does.
    pub fn judge(&mut self, allowed: bool) -> Verdict {
        if allowed {
            self.0 = 0;
            return Verdict::Allow;
        }
        self.0 += 1;
        if self.0 >= STRIKES {
            Verdict::Close
        } else {
            Verdict::Refuse
        }
    }
}

/// The frame bucket of one socket.
pub struct Bucket {
    rate: Rate,
    tokens: Tokens,
    strikes: Strikes,
}

impl Default for Bucket {
    fn default() -> Self {
        Self::new(SOCKET_FRAMES)
    }
}

impl Bucket {
    pub fn new(rate: Rate) -> Self {
        Self {
            rate,
            tokens: Tokens::full(rate, Instant::now()),
            strikes: Strikes::default(),
        }
    }

    pub fn take(&mut self) -> Verdict {
        self.take_at(Instant::now())
    }

    fn take_at(&mut self, now: Instant) -> Verdict {
        let allowed = self.tokens.take(self.rate, now).is_ok();
        self.strikes.judge(allowed)
    }
}

/// How often idle users' buckets are dropped.
const SWEEP_EVERY: Duration = Duration::from_secs(60);

/// The message buckets of every user who posted lately, on this instance.
///
/// Kept in memory per instance, not in Redis: behind a balancer that
/// spreads one user over N instances the user may post up to N times the
/// rate, which is acceptable since the per-socket limits and the sockets
/// per user still bound what one account can push through each instance.
/// A bucket that would have refilled completely is the same as none, so
/// such entries are swept out now and then: memory follows the users who
/// posted within the last minute or so, never all users ever seen.
pub struct UserRates {
    rate: Rate,
    /// Each socket's own frame rate, kept here since every socket is
    /// handed this object anyway.
    frames: Rate,
    state: Mutex<Buckets>,
}

struct Buckets {
    by_user: HashMap<i64, Tokens>,
    swept: Instant,
}

impl Default for UserRates {
    fn default() -> Self {
        Self::new(USER_MESSAGES, SOCKET_FRAMES)
    }
}

impl UserRates {
    /// Messages per user at `rate`; frames per socket at `frames`.
    pub fn new(rate: Rate, frames: Rate) -> Self {
        Self {
            rate,
            frames,
            state: Mutex::new(Buckets {
                by_user: HashMap::new(),
                swept: Instant::now(),
            }),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Buckets> {
        // Plain numbers behind the lock: a panic elsewhere leaves them usable.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Takes one message from the user's bucket, or says how long until
    /// the next one may be posted.
    pub fn take(&self, user_id: i64) -> Result<(), Duration> {
        self.take_at(user_id, Instant::now())
    }

    fn take_at(&self, user_id: i64, now: Instant) -> Result<(), Duration> {
        let rate = self.rate;
        let mut state = self.lock();
        if now.saturating_duration_since(state.swept) >= SWEEP_EVERY {
            state.by_user.retain(|_, t| !t.is_full_at(rate, now));
            state.swept = now;
        }
        state
            .by_user
            .entry(user_id)
            .or_insert_with(|| Tokens::full(rate, now))
            .take(rate, now)
    }

    /// A fresh frame bucket for one socket.
    pub fn socket_bucket(&self) -> Bucket {
        Bucket::new(self.frames)
    }

    /// Users with a bucket in memory.
    pub fn tracked(&self) -> usize {
        self.lock().by_user.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_read_as_burst_slash_per_second() {
        let rate: Rate = "30/10".parse().unwrap();
        assert_eq!((rate.burst, rate.per_second), (30.0, 10.0));
        let slow: Rate = " 2 / 0.5".parse().unwrap();
        assert_eq!((slow.burst, slow.per_second), (2.0, 0.5));
        for bad in [
            "30",
            "0.5/1",
            "1/0",
            "-1/1",
            "NaN/1",
            "1/inf",
            "2000000/1",
            "a/b",
            "30/10/1",
        ] {
            assert!(bad.parse::<Rate>().is_err(), "{bad} was accepted");
        }
        assert_eq!(rate.to_string().parse::<Rate>(), Ok(rate));
    }

    #[test]
    fn a_burst_passes_a_flood_is_refused_then_closed() {
        let mut b = Bucket::default();
        let t = Instant::now();
        for _ in 0..30 {
            assert_eq!(b.take_at(t), Verdict::Allow);
        }
        for _ in 0..19 {
            assert_eq!(b.take_at(t), Verdict::Refuse);
        }
        assert_eq!(b.take_at(t), Verdict::Close);
    }

    #[test]
    fn a_steady_pace_under_the_rate_always_passes() {
        let mut b = Bucket::default();
        let mut t = Instant::now();
        for _ in 0..1000 {
            t += Duration::from_millis(120);
            assert_eq!(b.take_at(t), Verdict::Allow);
        }
    }

    #[test]
    fn a_users_bucket_is_shared_and_says_how_long_to_wait() {
        let rates = UserRates::default();
        let t = Instant::now();
        for _ in 0..40 {
            assert!(rates.take_at(7, t).is_ok());
        }
        let wait = rates.take_at(7, t).unwrap_err();
        assert!(wait > Duration::ZERO && wait <= Duration::from_millis(500));
        assert!(rates.take_at(8, t).is_ok(), "another user is unaffected");
        assert!(rates.take_at(7, t + Duration::from_millis(500)).is_ok());
    }

    #[test]
    fn idle_users_are_forgotten() {
        let rates = UserRates::default();
        let t = Instant::now();
        for user in 0..1000 {
            rates.take_at(user, t).unwrap();
        }
        for _ in 0..40 {
            let _ = rates.take_at(5000, t + Duration::from_secs(50));
        }
        assert_eq!(rates.tracked(), 1001);
        // Past the sweep, only the user whose bucket is still short remains
        // (plus the one posting now).
        rates.take_at(6000, t + SWEEP_EVERY).unwrap();
        assert_eq!(rates.tracked(), 2);
    }

    #[test]
    fn strikes_reset_on_an_allowed_frame() {
        let mut s = Strikes::default();
        for _ in 0..19 {
            assert_eq!(s.judge(false), Verdict::Refuse);
        }
        assert_eq!(s.judge(true), Verdict::Allow);
        assert_eq!(s.judge(false), Verdict::Refuse);
    }
}
