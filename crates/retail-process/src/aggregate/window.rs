//! Event-time windows: which windows an event time falls in.

/// A tumbling (`advance == size`) or hopping (`advance < size`) window, in milliseconds.
/// Windows are aligned to the Unix epoch, so a 1-day window is a UTC day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Length.
    pub size: i64,
    /// Distance between the starts of consecutive windows.
    pub advance: i64,
}

impl Window {
    /// The `[start, end)` windows containing `ts`, oldest first.
    pub fn containing(self, ts: i64) -> impl Iterator<Item = (i64, i64)> {
        let last = ts.div_euclid(self.advance) * self.advance;
        let first = last - (self.size - 1).div_euclid(self.advance) * self.advance;
        let (size, advance) = (self.size, self.advance);
        (0..)
            .map(move |i| first + i * advance)
            .take_while(move |s| *s <= last)
            .filter(move |s| *s + size > ts)
            .map(move |s| (s, s + size))
    }
}

#[cfg(test)]
mod tests {
    use super::Window;

    #[test]
    fn tumbling_gives_the_one_window() {
        let w = Window {
            size: 60_000,
            advance: 60_000,
        };
        assert_eq!(w.containing(125_000).collect::<Vec<_>>(), [(120_000, 180_000)]);
        assert_eq!(w.containing(120_000).collect::<Vec<_>>(), [(120_000, 180_000)]);
        assert_eq!(w.containing(-1).collect::<Vec<_>>(), [(-60_000, 0)]);
    }

    #[test]
    fn hopping_gives_every_overlapping_window() {
        let w = Window { size: 10, advance: 4 };
        // Starts are multiples of 4; [s, s+10) contains 13 for s in {4, 8, 12}.
        assert_eq!(w.containing(13).collect::<Vec<_>>(), [(4, 14), (8, 18), (12, 22)]);
        assert_eq!(w.containing(12).collect::<Vec<_>>(), [(4, 14), (8, 18), (12, 22)]);
        assert_eq!(w.containing(14).collect::<Vec<_>>(), [(8, 18), (12, 22)]);
    }
}
