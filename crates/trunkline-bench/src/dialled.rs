//! Numbers as a NANP caller dials them, drawn from the same distribution as the decks.
//!
//! A lookup benchmark that only ever hits, or only ever misses, or always looks up the same
//! few numbers (which then sit in cache) measures the wrong thing. These numbers go where the
//! decks' prefixes go: NANP numbers in proportion to the decks' NANP rows, spread over every
//! area code (toll-free, premium and Caribbean ones included), and international numbers that
//! start with a random prefix of the international universe, so each country gets calls in
//! proportion to its weight. One number in a hundred goes to a country code no deck serves
//! (international networks, +882, +883, +979), so most numbers match a prefix but not all.
//!
//! They are written the ways users write them: `1` + 10 digits, 10 digits, 7-digit local
//! numbers in the home area code [`HOME_AREA_CODE`], `+1 (NPA) NXX-XXXX`, `011` and the
//! international number, and `+` forms with spaces, so normalisation does its real work.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use trunkline_core::routing::{normalize, DialPlan};

use crate::deck::{parse_digits, push_digits, Deck, COUNTRIES};

/// The tenant's home area code, for 7-digit local dialling.
pub const HOME_AREA_CODE: &str = "415";
/// Numbers that go to a country code no deck serves, per thousand.
const UNSERVED_PER_THOUSAND: u32 = 10;
/// Country codes no deck serves, with the digits of their numbers after the code.
const UNSERVED_COUNTRIES: [(&str, u8); 3] = [("882", 10), ("883", 9), ("979", 9)];

/// The dial plan of the benchmark tenant: NANP, with [`HOME_AREA_CODE`] for 7-digit numbers.
pub fn dial_plan() -> DialPlan {
    DialPlan {
        home_area_code: Some(HOME_AREA_CODE.to_owned()),
        ..DialPlan::nanp()
    }
}

impl Deck {
    /// `count` numbers as dialled, drawn from `seed`; the same arguments give the same numbers.
    /// Every one normalises to an E.164 number under [`dial_plan`].
    pub fn dialled_numbers(&self, count: usize, seed: u64) -> Vec<String> {
        let mut rng = SmallRng::seed_from_u64(seed);
        let nanp_per_million = (self.nanp_share() * 1_000_000.0) as u32;
        let (home_area_code, _) = parse_digits(HOME_AREA_CODE);
        (0..count)
            .map(|_| {
                let mut dialled = String::with_capacity(24);
                if rng.random_range(0..1_000) < UNSERVED_PER_THOUSAND {
                    let (code, national_digits) =
                        UNSERVED_COUNTRIES[rng.random_range(0..UNSERVED_COUNTRIES.len())];
                    dialled.push_str("011");
                    dialled.push_str(code);
                    push_random_digits(&mut dialled, &mut rng, national_digits);
                } else if rng.random_range(0..1_000_000) < nanp_per_million {
                    let npa = self
                        .area_codes
                        .get(rng.random_range(0..self.area_codes.len().max(1)))
                        .map_or(home_area_code, |npa| u64::from(*npa));
                    let nxx = rng.random_range(200..1_000);
                    let line = rng.random_range(0..10_000);
                    write_nanp(&mut dialled, &mut rng, npa, nxx, line);
                } else {
                    self.write_international(&mut dialled, &mut rng);
                }
                dialled
            })
            .collect()
    }

    /// The same numbers as [`Deck::dialled_numbers`], normalised: E.164 digits without `+`,
    /// what the prefix index is searched with.
    pub fn routing_digits(&self, count: usize, seed: u64) -> Vec<String> {
        let plan = dial_plan();
        self.dialled_numbers(count, seed)
            .iter()
            .filter_map(|dialled| {
                normalize(dialled, &plan)
                    .ok()?
                    .routing_digits()
                    .map(str::to_owned)
            })
            .collect()
    }

    /// A number starting with a random prefix of the international universe, completed to the
    /// length of its country's numbers, after `011` or as a `+` form.
    fn write_international(&self, dialled: &mut String, rng: &mut SmallRng) {
        let Some(prefix) = self
            .international
            .get(rng.random_range(0..self.international.len().max(1)))
            .copied()
        else {
            dialled.push_str("01144");
            push_random_digits(dialled, rng, 10);
            return;
        };
        let (code, _, national_digits) = COUNTRIES
            .get(usize::from(prefix.country))
            .copied()
            .unwrap_or(("44", 1, 10));
        // Prefixes are at least two digits shorter than their country's numbers.
        let total_digits = code.len() as u8 + national_digits;
        let form = rng.random_range(0..100);
        if form < 85 {
            dialled.push_str("011");
        } else {
            dialled.push('+');
        }
        push_digits(dialled, prefix.value, prefix.digits);
        if form >= 95 {
            dialled.push(' ');
        }
        push_random_digits(dialled, rng, total_digits.saturating_sub(prefix.digits));
    }
}

/// A NANP number in one of the forms NANP users dial.
fn write_nanp(dialled: &mut String, rng: &mut SmallRng, npa: u64, nxx: u64, line: u64) {
    let form = rng.random_range(0..100);
    if form < 10 {
        // Local: the exchange and line only, in the home area code.
        push_digits(dialled, nxx, 3);
        push_digits(dialled, line, 4);
        return;
    }
    if form < 65 {
        dialled.push('1');
    } else if form < 90 {
        // 10 digits.
    } else {
        dialled.push_str("+1 (");
        push_digits(dialled, npa, 3);
        dialled.push_str(") ");
        push_digits(dialled, nxx, 3);
        dialled.push('-');
        push_digits(dialled, line, 4);
        return;
    }
    push_digits(dialled, npa, 3);
    push_digits(dialled, nxx, 3);
    push_digits(dialled, line, 4);
}

fn push_random_digits(text: &mut String, rng: &mut SmallRng, digits: u8) {
    for _ in 0..digits {
        text.push(char::from(b'0' + rng.random_range(0..10_u8)));
    }
}
