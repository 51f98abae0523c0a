//! The simulation's random numbers: a small seeded generator (splitmix64), so that a seed always
//! gives the same run on every machine.
//!
//! Owns turning a seed into numbers, ranges, coin flips and shuffles. It must not read anything
//! outside itself: no clock, no operating-system entropy.

/// A splitmix64 generator: 64 bits of state, one addition and a mix per number.
#[derive(Debug, Clone)]
pub struct Rng {
    state: u64,
}

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `[0, 1)`, from the top 53 bits.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A whole number in `[low, high]` (both included); `low` when the range is empty.
    pub fn between(&mut self, low: i64, high: i64) -> i64 {
        if high <= low {
            return low;
        }
        let span = high.abs_diff(low) + 1;
        // The multiply-shift reduction: unbiased enough for a simulation, and never a division.
        let offset = ((u128::from(self.next_u64()) * u128::from(span)) >> 64) as u64;
        low.saturating_add_unsigned(offset)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Shuffles a slice in place (Fisher-Yates).
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.between(0, i as i64) as usize;
            items.swap(i, j);
        }
    }

    /// A generator of its own for one purpose, so that drawing more numbers for one thing does not
    /// shift every later draw for another.
    pub fn fork(&mut self) -> Rng {
        Rng::new(self.next_u64())
    }
}

/// A deck of cards dealt in a shuffled order; when it runs out it is shuffled again. Every card
/// comes up once before any comes up twice.
#[derive(Debug, Clone)]
pub struct Deck<T: Copy> {
    cards: Vec<T>,
    next: usize,
}

impl<T: Copy> Deck<T> {
    /// A deck holding `cards`, shuffled.
    pub fn new(cards: &[T], rng: &mut Rng) -> Self {
        let mut cards = cards.to_vec();
        rng.shuffle(&mut cards);
        Self { cards, next: 0 }
    }

    /// The next card; `None` only for an empty deck.
    pub fn deal(&mut self, rng: &mut Rng) -> Option<T> {
        if self.next == self.cards.len() {
            rng.shuffle(&mut self.cards);
            self.next = 0;
        }
        let card = self.cards.get(self.next).copied();
        self.next += 1;
        card
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_numbers() {
        let mut a = Rng::new(7);
        let mut b = Rng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(Rng::new(1).next_u64(), Rng::new(2).next_u64());
    }

    #[test]
    fn ranges_stay_in_bounds_and_reach_both_ends() {
        let mut rng = Rng::new(3);
        let draws: Vec<i64> = (0..1000).map(|_| rng.between(-2, 2)).collect();
        assert!(draws.iter().all(|d| (-2..=2).contains(d)));
        assert!(draws.contains(&-2) && draws.contains(&2));
        assert_eq!(rng.between(5, 5), 5);
        assert_eq!(rng.between(5, 4), 5);
    }

    #[test]
    fn a_deck_deals_every_card_before_repeating() {
        let mut rng = Rng::new(11);
        let mut deck = Deck::new(&[1, 2, 3, 4], &mut rng);
        let mut first: Vec<i32> = (0..4).filter_map(|_| deck.deal(&mut rng)).collect();
        first.sort_unstable();
        assert_eq!(first, [1, 2, 3, 4]);
        let mut second: Vec<i32> = (0..4).filter_map(|_| deck.deal(&mut rng)).collect();
        second.sort_unstable();
        assert_eq!(second, [1, 2, 3, 4]);
    }
}
