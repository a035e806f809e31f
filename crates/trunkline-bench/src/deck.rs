//! Rate decks shaped like real carriers' decks, generated from a seed.
//!
//! A benchmark of the prefix index is only as good as the decks behind it: how many prefixes
//! several carriers share, how long the prefixes are and how many price points recur decide
//! the index's memory and how many probes a lookup makes. This module draws every carrier's
//! deck from two fixed universes of prefixes, the way real decks are cut from the same
//! numbering plans:
//!
//! - **NANP**: every area code (NPA) as a 4-digit prefix `1NPA`, and every area code and
//!   exchange (NPA-NXX) as a 7-digit prefix `1NPANXX`: 792 area codes and 633,600 exchanges.
//!   A carrier that serves NANP lists every area code (its fallback price) and a sample of the
//!   exchanges.
//! - **International**: the country codes of [`COUNTRIES`] (1 to 3 digits), each with a tree
//!   of longer prefixes (city codes, mobile ranges) of 1 to 5 more digits,
//!   [`INTERNATIONAL_UNIVERSE_PREFIXES`] in all (400,000), shared out by the country's traffic
//!   weight. A
//!   carrier that serves international calls lists every country code and a sample of the
//!   tree.
//!
//! So the more rows are loaded, the more carriers share each prefix, as they do in practice:
//! at 1 million rows a prefix is in about 1.5 decks, at 5 million in about 5.
//!
//! Carriers differ in size (a weight from 50 to 150), in how much of their deck is NANP (90%
//! for domestic carriers, 60% for wholesale, 20% for international specialists) and in price
//! (80% to 125% of a base price per destination). Prices are rounded the way rate sheets
//! round them, so a few thousand price points recur across millions of rows. One row in 200
//! has expired (its `effective_until` is in the past, so lookups fall back to a shorter
//! prefix) and one in 20 has an `effective_from` in the past.
//!
//! Everything is drawn from [`SmallRng`] seeded from [`DeckSpec::seed`]: the same spec gives
//! the same rows, in the same order, every time (for a given `rand` version and platform).
//! Rows are streamed ([`Deck::for_each_row`]), never all held, so building a 5-million-row
//! index does not also hold 5 million `Rate` values.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use trunkline_core::routing::{
    IndexError, PrefixIndex, PrefixIndexBuilder, Rate, NANP_OTHER_COUNTRY_AREA_CODES,
    NANP_PREMIUM_AREA_CODE, NANP_TOLL_FREE_AREA_CODES,
};

/// Carriers in the benchmark decks.
pub const DEFAULT_CARRIERS: usize = 20;
/// Seed of the benchmark decks and numbers; any value works, this one is fixed so that runs
/// compare.
pub const DEFAULT_SEED: u64 = 0x7472_756e_6b6c_696e;
/// The time every benchmark routes at, unix milliseconds (2025-06-15); deck rows' effective
/// dates are placed around it.
pub const NOW_MS: u64 = 1_750_000_000_000;
/// Prefixes below the country codes in the international universe.
pub const INTERNATIONAL_UNIVERSE_PREFIXES: usize = 400_000;

/// NANP exchange codes (NXX) run from 200 to 999.
const FIRST_EXCHANGE: u16 = 200;
const EXCHANGES_PER_AREA_CODE: usize = 800;
/// Most digits a prefix of the international tree adds to its country code.
const MAX_EXTRA_DIGITS: u8 = 5;
/// Relative odds of a tree prefix adding 1, 2, 3, 4 or 5 digits to its country code.
const EXTRA_DIGITS_WEIGHTS: [u32; 5] = [2, 8, 25, 35, 30];
/// Draws made for a country's tree before giving up on reaching its share (short trees
/// saturate: a country has only 10 one-digit sub-prefixes).
const TREE_DRAWS_PER_PREFIX: usize = 4;
/// Rows in a thousand whose `effective_until` is in the past.
const EXPIRED_PER_THOUSAND: u32 = 5;
/// Rows in a thousand (after the expired ones) with an `effective_from` in the past.
const DATED_PER_THOUSAND: u32 = 50;
const DAY_MS: u64 = 86_400_000;
/// A sample smaller than its population divided by this is drawn position by position
/// instead of by scanning the population.
const SPARSE_SAMPLE_RATIO: usize = 4;

/// Countries served by the decks: E.164 country code, relative traffic weight (which also
/// sets the size of the country's prefix tree) and digits of a national number.
pub const COUNTRIES: [(&str, u32, u8); 72] = [
    ("52", 60, 10),  // Mexico
    ("44", 50, 10),  // United Kingdom
    ("91", 45, 10),  // India
    ("63", 35, 10),  // Philippines
    ("86", 30, 11),  // China
    ("49", 25, 10),  // Germany
    ("33", 20, 9),   // France
    ("55", 20, 11),  // Brazil
    ("57", 15, 10),  // Colombia
    ("502", 12, 8),  // Guatemala
    ("503", 12, 8),  // El Salvador
    ("504", 10, 8),  // Honduras
    ("505", 5, 8),   // Nicaragua
    ("506", 5, 8),   // Costa Rica
    ("507", 4, 8),   // Panama
    ("53", 8, 8),    // Cuba
    ("509", 8, 8),   // Haiti
    ("51", 8, 9),    // Peru
    ("593", 8, 9),   // Ecuador
    ("58", 6, 10),   // Venezuela
    ("54", 8, 10),   // Argentina
    ("56", 6, 9),    // Chile
    ("34", 10, 9),   // Spain
    ("39", 10, 10),  // Italy
    ("48", 6, 9),    // Poland
    ("380", 6, 9),   // Ukraine
    ("7", 8, 10),    // Russia and Kazakhstan
    ("972", 8, 9),   // Israel
    ("234", 12, 10), // Nigeria
    ("233", 6, 9),   // Ghana
    ("254", 5, 9),   // Kenya
    ("251", 4, 9),   // Ethiopia
    ("20", 6, 10),   // Egypt
    ("212", 4, 9),   // Morocco
    ("27", 5, 9),    // South Africa
    ("92", 12, 10),  // Pakistan
    ("880", 8, 10),  // Bangladesh
    ("84", 12, 9),   // Vietnam
    ("82", 10, 10),  // South Korea
    ("81", 10, 10),  // Japan
    ("886", 5, 9),   // Taiwan
    ("852", 5, 8),   // Hong Kong
    ("66", 5, 9),    // Thailand
    ("62", 6, 10),   // Indonesia
    ("60", 4, 9),    // Malaysia
    ("65", 4, 8),    // Singapore
    ("61", 8, 9),    // Australia
    ("64", 3, 9),    // New Zealand
    ("353", 4, 9),   // Ireland
    ("31", 5, 9),    // Netherlands
    ("32", 3, 9),    // Belgium
    ("41", 4, 9),    // Switzerland
    ("43", 3, 10),   // Austria
    ("46", 3, 9),    // Sweden
    ("47", 2, 8),    // Norway
    ("45", 2, 8),    // Denmark
    ("351", 4, 9),   // Portugal
    ("30", 3, 10),   // Greece
    ("90", 5, 10),   // Turkey
    ("98", 4, 10),   // Iran
    ("966", 5, 9),   // Saudi Arabia
    ("971", 5, 9),   // United Arab Emirates
    ("961", 3, 8),   // Lebanon
    ("962", 3, 9),   // Jordan
    ("964", 3, 10),  // Iraq
    ("93", 2, 9),    // Afghanistan
    ("977", 3, 10),  // Nepal
    ("94", 3, 9),    // Sri Lanka
    ("237", 3, 9),   // Cameroon
    ("221", 3, 9),   // Senegal
    ("232", 2, 8),   // Sierra Leone
    ("252", 2, 8),   // Somalia
];

/// What to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeckSpec {
    /// Deck rows across all carriers. Reached exactly unless the carriers' shares of it exceed
    /// the universes, which takes well over 10 million rows with 20 carriers.
    pub rows: usize,
    pub carriers: usize,
    pub seed: u64,
    /// Prefixes below the country codes in the international universe;
    /// [`INTERNATIONAL_UNIVERSE_PREFIXES`] unless a test wants a quicker, smaller deck.
    pub international_prefixes: usize,
}

impl DeckSpec {
    /// `rows` rows across [`DEFAULT_CARRIERS`] carriers, from [`DEFAULT_SEED`].
    pub fn new(rows: usize) -> Self {
        DeckSpec {
            rows,
            carriers: DEFAULT_CARRIERS,
            seed: DEFAULT_SEED,
            international_prefixes: INTERNATIONAL_UNIVERSE_PREFIXES,
        }
    }
}

/// A prefix of the international universe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Prefix {
    /// The prefix read as a decimal number; no prefix starts with 0.
    pub(crate) value: u64,
    pub(crate) digits: u8,
    /// Position of its country in [`COUNTRIES`].
    pub(crate) country: u16,
}

/// What one carrier's deck holds; its rows are drawn from its own seed when streamed.
#[derive(Clone, Debug)]
struct CarrierPlan {
    name: String,
    nanp_rows: usize,
    international_rows: usize,
    /// Percentage of the base price the carrier charges, 80 to 125.
    price_percent: u64,
    connect_fee_micros: u64,
    seed: u64,
}

/// Every carrier's deck, ready to stream. See the module documentation for its shape.
#[derive(Clone, Debug)]
pub struct Deck {
    spec: DeckSpec,
    /// Every NANP area code (NPA), ascending.
    pub(crate) area_codes: Vec<u16>,
    /// The base price of each of `area_codes`, in the same order.
    area_code_base_micros: Vec<u64>,
    /// The international tree below the country codes, ascending by value.
    pub(crate) international: Vec<Prefix>,
    carriers: Vec<CarrierPlan>,
}

impl Deck {
    /// Draws the universes and plans each carrier's deck; the rows themselves are generated
    /// when streamed.
    pub fn new(spec: DeckSpec) -> Deck {
        let mut rng = SmallRng::seed_from_u64(spec.seed);
        let area_codes = nanp_area_codes();
        let area_code_base_micros = area_codes
            .iter()
            .map(|npa| nanp_base_micros(*npa))
            .collect();
        let international = international_universe(&mut rng, spec.international_prefixes);
        let nanp_universe = area_codes.len() * (1 + EXCHANGES_PER_AREA_CODE);
        let international_universe = COUNTRIES.len() + international.len();

        let weights: Vec<usize> = (0..spec.carriers)
            .map(|_| rng.random_range(50..=150))
            .collect();
        let total_weight: usize = weights.iter().sum::<usize>().max(1);
        let mut carriers = Vec::with_capacity(spec.carriers);
        let mut assigned = 0;
        let name_digits = spec.carriers.to_string().len().max(2);
        for (position, weight) in weights.iter().enumerate() {
            // The last carrier takes the rounding remainder, so the shares add up exactly.
            let rows = if position + 1 == spec.carriers {
                spec.rows - assigned
            } else {
                spec.rows * weight / total_weight
            };
            assigned += rows;
            let nanp_percent = match position % 4 {
                0 => 90,
                2 => 20,
                _ => 60,
            };
            let mut nanp_rows = rows * nanp_percent / 100;
            let mut international_rows = rows - nanp_rows;
            // A share larger than its universe spills over to the other one.
            if nanp_rows > nanp_universe {
                international_rows += nanp_rows - nanp_universe;
                nanp_rows = nanp_universe;
            }
            if international_rows > international_universe {
                nanp_rows =
                    (nanp_rows + international_rows - international_universe).min(nanp_universe);
                international_rows = international_universe;
            }
            carriers.push(CarrierPlan {
                // Zero-padded to the same width, so names sort in carrier order.
                name: format!("carrier-{:0width$}", position + 1, width = name_digits),
                nanp_rows,
                international_rows,
                price_percent: rng.random_range(80..=125),
                connect_fee_micros: [0, 0, 0, 1_000, 5_000][rng.random_range(0..5)],
                seed: rng.random(),
            });
        }
        Deck {
            spec,
            area_codes,
            area_code_base_micros,
            international,
            carriers,
        }
    }

    pub fn spec(&self) -> DeckSpec {
        self.spec
    }

    /// Rows the decks hold in all: [`DeckSpec::rows`] unless the universes ran out.
    pub fn rows(&self) -> usize {
        self.carriers
            .iter()
            .map(|carrier| carrier.nanp_rows + carrier.international_rows)
            .sum()
    }

    /// Share of the rows that are NANP prefixes, from 0 to 1; numbers are drawn in the same
    /// proportion.
    pub fn nanp_share(&self) -> f64 {
        let nanp: usize = self.carriers.iter().map(|carrier| carrier.nanp_rows).sum();
        nanp as f64 / self.rows().max(1) as f64
    }

    /// Carrier names, sorted.
    pub fn carrier_names(&self) -> impl Iterator<Item = &str> {
        self.carriers.iter().map(|carrier| carrier.name.as_str())
    }

    /// Calls `emit` with every row of every carrier's deck: carrier by carrier, NANP then
    /// international, each part in ascending prefix order. The `Rate` is reused between calls.
    pub fn for_each_row(&self, mut emit: impl FnMut(&str, &Rate)) {
        let mut rate = Rate {
            prefix: String::with_capacity(16),
            rate_micros_per_minute: 0,
            connect_fee_micros: 0,
            description: String::new(),
            effective_from_ms: None,
            effective_until_ms: None,
        };
        for plan in &self.carriers {
            let mut selection = SmallRng::seed_from_u64(plan.seed);
            let mut pricing = SmallRng::seed_from_u64(plan.seed ^ 0x5bd1_e995_5bd1_e995);
            let mut row = |value: u64, digits: u8, base_micros: u64| {
                fill_rate(&mut rate, plan, &mut pricing, value, digits, base_micros);
                emit(&plan.name, &rate);
            };

            let area_codes = self.area_codes.len();
            let area_code_row = |row: &mut dyn FnMut(u64, u8, u64), position: usize| {
                if let (Some(npa), Some(base_micros)) = (
                    self.area_codes.get(position),
                    self.area_code_base_micros.get(position),
                ) {
                    row(1_000 + u64::from(*npa), 4, *base_micros);
                }
            };
            if plan.nanp_rows < area_codes {
                select(&mut selection, area_codes, plan.nanp_rows, |position| {
                    area_code_row(&mut row, position);
                });
            } else {
                for position in 0..area_codes {
                    area_code_row(&mut row, position);
                }
                let exchanges = area_codes * EXCHANGES_PER_AREA_CODE;
                select(
                    &mut selection,
                    exchanges,
                    plan.nanp_rows - area_codes,
                    |position| {
                        let area_code = position / EXCHANGES_PER_AREA_CODE;
                        let (Some(npa), Some(base_micros)) = (
                            self.area_codes.get(area_code),
                            self.area_code_base_micros.get(area_code),
                        ) else {
                            return;
                        };
                        // Below 800, so the cast is exact.
                        let nxx = FIRST_EXCHANGE + (position % EXCHANGES_PER_AREA_CODE) as u16;
                        let value = 1_000_000 + u64::from(*npa) * 1_000 + u64::from(nxx);
                        // Exchanges of one area code differ a little in price.
                        let percent = 90 + mix(value) % 51;
                        row(value, 7, base_micros * percent / 100);
                    },
                );
            }

            let country_row = |row: &mut dyn FnMut(u64, u8, u64), position: usize| {
                if let Some((code, _, _)) = COUNTRIES.get(position) {
                    let (value, digits) = parse_digits(code);
                    row(value, digits, country_base_micros(code));
                }
            };
            if plan.international_rows < COUNTRIES.len() {
                select(
                    &mut selection,
                    COUNTRIES.len(),
                    plan.international_rows,
                    |position| country_row(&mut row, position),
                );
            } else {
                for position in 0..COUNTRIES.len() {
                    country_row(&mut row, position);
                }
                select(
                    &mut selection,
                    self.international.len(),
                    plan.international_rows - COUNTRIES.len(),
                    |position| {
                        let Some(prefix) = self.international.get(position) else {
                            return;
                        };
                        let code = COUNTRIES
                            .get(usize::from(prefix.country))
                            .map_or("", |(code, _, _)| code);
                        // Mobile ranges and premium breakouts cost up to three times the
                        // country's base.
                        let percent = 100 + mix(prefix.value) % 201;
                        row(
                            prefix.value,
                            prefix.digits,
                            country_base_micros(code) * percent / 100,
                        );
                    },
                );
            }
        }
    }

    /// Every row, with the carrier's position in [`Deck::carrier_names`]; for measuring the
    /// index build alone. Holds all rows at once, about 100 bytes each.
    pub fn collect_rows(&self) -> Vec<(usize, Rate)> {
        let names: Vec<&str> = self.carrier_names().collect();
        let mut rows = Vec::with_capacity(self.rows());
        let mut carrier = 0;
        self.for_each_row(|name, rate| {
            // Rows come carrier by carrier, in name order.
            while names.get(carrier).is_some_and(|current| *current != name) {
                carrier += 1;
            }
            rows.push((carrier, rate.clone()));
        });
        rows
    }

    /// Number of distinct prefixes across all carriers' decks (a prefix several carriers list
    /// counts once). Holds 16 bytes per row while counting.
    pub fn distinct_prefixes(&self) -> usize {
        let mut prefixes = Vec::with_capacity(self.rows());
        self.for_each_row(|_, rate| {
            let (value, digits) = parse_digits(&rate.prefix);
            prefixes.push((digits, value));
        });
        prefixes.sort_unstable();
        prefixes.dedup();
        prefixes.len()
    }

    /// Builds the prefix index over every row, streaming them into the builder.
    pub fn build_index(&self) -> Result<PrefixIndex, IndexError> {
        let mut builder = PrefixIndexBuilder::with_capacity(self.rows());
        let mut result = Ok(());
        self.for_each_row(|carrier, rate| {
            if result.is_ok() {
                result = builder.add(carrier, rate);
            }
        });
        result?;
        builder.finish()
    }
}

/// Writes one row into `rate`: its prefix, its price (the destination's base price scaled by
/// the carrier's and a little noise, rounded as rate sheets round) and its effective period.
fn fill_rate(
    rate: &mut Rate,
    plan: &CarrierPlan,
    rng: &mut SmallRng,
    value: u64,
    digits: u8,
    base_micros: u64,
) {
    rate.prefix.clear();
    push_digits(&mut rate.prefix, value, digits);
    let noise_percent = rng.random_range(95..=105);
    rate.rate_micros_per_minute =
        round_price(base_micros * plan.price_percent / 100 * noise_percent / 100);
    rate.connect_fee_micros = plan.connect_fee_micros;
    let period = rng.random_range(0..1_000);
    (rate.effective_from_ms, rate.effective_until_ms) = if period < EXPIRED_PER_THOUSAND {
        (None, Some(NOW_MS - 30 * DAY_MS))
    } else if period < EXPIRED_PER_THOUSAND + DATED_PER_THOUSAND {
        (Some(NOW_MS - 90 * DAY_MS), None)
    } else {
        (None, None)
    };
}

/// Calls `chosen` with `wanted` distinct positions out of `0..population`, ascending, each
/// set of positions equally likely. A small sample is drawn directly (random positions,
/// duplicates dropped and redrawn); a large one by Knuth's selection sampling (algorithm S),
/// one draw per position considered. Either way the cost is a few draws per position chosen,
/// not one per position of the population.
fn select(rng: &mut SmallRng, population: usize, wanted: usize, mut chosen: impl FnMut(usize)) {
    let wanted = wanted.min(population);
    if wanted.saturating_mul(SPARSE_SAMPLE_RATIO) < population {
        let mut positions: Vec<usize> = Vec::with_capacity(wanted);
        while positions.len() < wanted {
            let missing = wanted - positions.len();
            positions.extend((0..missing).map(|_| rng.random_range(0..population)));
            positions.sort_unstable();
            positions.dedup();
        }
        positions.into_iter().for_each(chosen);
        return;
    }
    let mut needed = wanted;
    for position in 0..population {
        if needed == 0 {
            return;
        }
        if rng.random_range(0..population - position) < needed {
            chosen(position);
            needed -= 1;
        }
    }
}

/// Every NANP area code: 3 digits, the first 2 to 9, not an N11 service code.
pub(crate) fn nanp_area_codes() -> Vec<u16> {
    (200..1_000).filter(|npa| npa % 100 != 11).collect()
}

/// The international universe: for each country, its share of `size` distinct prefixes of 1 to 5 digits more than its
/// country code (and always shorter than its numbers), sorted.
fn international_universe(rng: &mut SmallRng, size: usize) -> Vec<Prefix> {
    let total_weight: usize = COUNTRIES
        .iter()
        .map(|(_, weight, _)| *weight as usize)
        .sum();
    let extra_weight_total: u32 = EXTRA_DIGITS_WEIGHTS.iter().sum();
    let mut universe = Vec::with_capacity(size);
    for (country, (code, weight, national_digits)) in COUNTRIES.iter().enumerate() {
        let share = size * *weight as usize / total_weight;
        let (code_value, code_digits) = parse_digits(code);
        // Prefixes stay at least two digits shorter than the country's numbers.
        let most_extra = MAX_EXTRA_DIGITS
            .min(national_digits.saturating_sub(2))
            .max(1);
        let mut tree: Vec<Prefix> = Vec::with_capacity(share);
        let mut draws = 0;
        while tree.len() < share && draws < share * TREE_DRAWS_PER_PREFIX {
            // Draw what is missing, then drop the duplicates.
            let batch = share - tree.len();
            for _ in 0..batch {
                let mut pick = rng.random_range(0..extra_weight_total);
                let mut extra = 1_u8;
                for weight in EXTRA_DIGITS_WEIGHTS {
                    if pick < weight {
                        break;
                    }
                    pick -= weight;
                    extra += 1;
                }
                let extra = extra.min(most_extra);
                let scale = 10_u64.pow(u32::from(extra));
                tree.push(Prefix {
                    value: code_value * scale + rng.random_range(0..scale),
                    digits: code_digits + extra,
                    // COUNTRIES has fewer than 2^16 entries.
                    country: country as u16,
                });
            }
            draws += batch;
            tree.sort_unstable();
            tree.dedup();
        }
        universe.extend(tree);
    }
    universe.sort_unstable();
    universe
}

/// Base price of a NANP area code, micros per minute: cents for the US and Canada, far more
/// for the Caribbean and premium rate, a fraction of a cent for toll-free.
fn nanp_base_micros(npa: u16) -> u64 {
    let text = npa_text(npa);
    let text = text.as_str();
    if NANP_TOLL_FREE_AREA_CODES.contains(&text) {
        1_500
    } else if text == NANP_PREMIUM_AREA_CODE {
        400_000
    } else if NANP_OTHER_COUNTRY_AREA_CODES.contains(&text) {
        40_000 + mix(u64::from(npa)) % 160_000
    } else {
        2_000 + mix(u64::from(npa)) % 8_000
    }
}

/// Base price of a country, micros per minute: half a cent to thirty cents.
fn country_base_micros(code: &str) -> u64 {
    5_000 + mix(parse_digits(code).0) % 295_000
}

/// Rounds to 0.0001 below 2 cents, 0.001 below 20 cents and 0.01 above, as rate sheets do.
fn round_price(micros: u64) -> u64 {
    let step = match micros {
        0..20_000 => 100,
        20_000..200_000 => 1_000,
        _ => 10_000,
    };
    (micros / step * step).max(step)
}

fn npa_text(npa: u16) -> String {
    let mut text = String::with_capacity(3);
    push_digits(&mut text, u64::from(npa), 3);
    text
}

/// `text`'s value and number of digits; `text` is one of the digit strings above.
pub(crate) fn parse_digits(text: &str) -> (u64, u8) {
    let value = text
        .bytes()
        .fold(0_u64, |value, byte| value * 10 + u64::from(byte - b'0'));
    // The digit strings here are at most 15 long.
    (value, text.len() as u8)
}

/// Appends `value` as exactly `digits` decimal digits, zero-padded.
pub(crate) fn push_digits(text: &mut String, value: u64, digits: u8) {
    let mut buffer = [b'0'; 20];
    let mut rest = value;
    let width = usize::from(digits).min(buffer.len());
    for slot in buffer.iter_mut().take(width).rev() {
        // A single decimal digit, so the cast is exact.
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    for byte in buffer.iter().take(width) {
        text.push(char::from(*byte));
    }
}

/// A fixed scramble of `value` (the splitmix64 finaliser), for prices that depend on the
/// destination but not on the order rows are drawn in.
pub(crate) fn mix(value: u64) -> u64 {
    let mut hash = value.wrapping_add(0x9e37_79b9_7f4a_7c15);
    hash = (hash ^ (hash >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    hash = (hash ^ (hash >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    hash ^ (hash >> 31)
}
