//! A token bucket per socket: a burst of frames is fine, a steady flood is
//! not. A frame over the limit gets an error frame; a client that keeps
//! going after many refusals is closed with 1008 "Rate limited".

use std::time::Instant;

/// Frames a socket may send at once.
const BURST: f64 = 30.0;
/// Frames per second a socket may keep sending.
const PER_SECOND: f64 = 10.0;
/// Refused frames in a row before the socket is closed.
const STRIKES: u32 = 20;

pub struct Bucket {
    tokens: f64,
    last: Instant,
    strikes: u32,
}

/// What to do with a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    /// Refuse this frame with an error; the socket stays open.
    Refuse,
    /// Refused too often: close the socket.
    Close,
}

impl Default for Bucket {
    fn default() -> Self {
        Self {
            tokens: BURST,
            last: Instant::now(),
            strikes: 0,
        }
    }
}

impl Bucket {
    pub fn take(&mut self) -> Verdict {
        self.take_at(Instant::now())
    }

    fn take_at(&mut self, now: Instant) -> Verdict {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * PER_SECOND).min(BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.strikes = 0;
            return Verdict::Allow;
        }
        self.strikes += 1;
        if self.strikes >= STRIKES {
            Verdict::Close
        } else {
            Verdict::Refuse
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

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
}
