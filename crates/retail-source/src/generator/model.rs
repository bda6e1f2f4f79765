//! The simulated retail world the generator sells in: stores in real cities, their
//! salespeople, and a product catalog with prices and a Zipf popularity. Built once from the
//! seed; the event stream (`generate.rs`) only samples from it.

use std::ops::Range;

use rand::RngCore;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Zipf};
use retail_core::event::{Product, Seller, StoreInfo};
use rust_decimal::Decimal;

use super::config::GeneratorConfig;

/// First SKU number; SKUs are `SKU_BASE..SKU_BASE + skus`, six digits like a real catalog.
pub const SKU_BASE: i64 = 100_000;

/// A uniform float in `[0, 1)` from the top 53 bits of one draw. Spelled out rather than taken
/// from `rand` so that the stream of a seed cannot change with a `rand` upgrade.
pub(crate) fn unit(rng: &mut ChaCha8Rng) -> f64 {
    (rng.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A uniform index in `0..n` (`n > 0`), by multiply-shift (bias below 2^-32 for our sizes).
pub(crate) fn below(rng: &mut ChaCha8Rng, n: usize) -> usize {
    ((u128::from(rng.next_u64()) * n as u128) >> 64) as usize
}

/// SplitMix64's finaliser: spreads a seed over 64 bits. Also derives per-customer traits from
/// the customer number, so customers cost no memory.
pub(crate) const fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Relative shopping activity by local hour: quiet at night, a lunchtime and an
/// after-work peak. Multiplies a store's base popularity.
const ACTIVITY_BY_HOUR: [f64; 24] = [
    0.30, 0.30, 0.30, 0.30, 0.30, 0.30, // 00-05
    0.40, 0.55, 0.70, 0.85, 0.95, 1.00, // 06-11
    1.00, 0.95, 0.85, 0.80, 0.85, 0.95, // 12-17
    1.00, 0.90, 0.75, 0.60, 0.45, 0.35, // 18-23
];

/// Shopping activity (0.3 at night to 1.0 at peak) at `utc_ms` for a place `offset_minutes`
/// from UTC.
pub fn activity(utc_ms: i64, offset_minutes: i32) -> f64 {
    let local_minutes = utc_ms.div_euclid(60_000) + i64::from(offset_minutes);
    ACTIVITY_BY_HOUR[local_minutes.div_euclid(60).rem_euclid(24) as usize]
}

/// A product category: its display name, a typical price and what it sells.
struct Category {
    name: &'static str,
    median_price: f64,
    nouns: &'static [&'static str],
}

const CATEGORIES: [Category; 10] = [
    Category {
        name: "Grocery",
        median_price: 3.5,
        nouns: &["Coffee", "Pasta", "Olive Oil", "Rice", "Chocolate", "Cereal"],
    },
    Category {
        name: "Beverages",
        median_price: 2.5,
        nouns: &["Sparkling Water", "Orange Juice", "Green Tea", "Cola", "Lemonade"],
    },
    Category {
        name: "Household",
        median_price: 6.0,
        nouns: &["Detergent", "Sponges", "Paper Towels", "Trash Bags", "Dish Soap"],
    },
    Category {
        name: "Personal Care",
        median_price: 8.0,
        nouns: &["Shampoo", "Toothpaste", "Sunscreen", "Hand Cream", "Deodorant"],
    },
    Category {
        name: "Toys",
        median_price: 20.0,
        nouns: &["Puzzle", "Building Set", "Plush Bear", "Board Game", "Kite"],
    },
    Category {
        name: "Apparel",
        median_price: 30.0,
        nouns: &["T-Shirt", "Hoodie", "Jeans", "Scarf", "Rain Jacket"],
    },
    Category {
        name: "Shoes",
        median_price: 60.0,
        nouns: &["Sneakers", "Boots", "Sandals", "Running Shoes", "Loafers"],
    },
    Category {
        name: "Home",
        median_price: 40.0,
        nouns: &["Lamp", "Cushion", "Frying Pan", "Towel Set", "Vase"],
    },
    Category {
        name: "Sports",
        median_price: 35.0,
        nouns: &[
            "Yoga Mat",
            "Football",
            "Water Bottle",
            "Dumbbells",
            "Tennis Racket",
        ],
    },
    Category {
        name: "Electronics",
        median_price: 120.0,
        nouns: &["Headphones", "Charger", "Speaker", "Smartwatch", "Keyboard"],
    },
];

const ADJECTIVES: [&str; 12] = [
    "Classic", "Organic", "Premium", "Everyday", "Compact", "Deluxe", "Eco", "Ultra", "Family", "Travel",
    "Nordic", "Urban",
];

const FIRST_NAMES: [&str; 20] = [
    "Anna", "Ben", "Carla", "David", "Elif", "Felix", "Grace", "Hiro", "Isabel", "Jonas", "Kavya", "Liam",
    "Maria", "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sven", "Yuki",
];

const LAST_NAMES: [&str; 20] = [
    "Schmidt", "Martin", "Smith", "Garcia", "Rossi", "de Vries", "Johnson", "Silva", "Sharma", "Tanaka",
    "Brown", "Müller", "Dubois", "Lopez", "Bianchi", "Jansen", "Williams", "Souza", "Patel", "Suzuki",
];

/// A store of the simulated world.
#[derive(Debug, Clone, PartialEq)]
pub struct Store {
    /// Its catalog entry.
    pub info: StoreInfo,
    /// Local time offset from UTC, for the time-of-day curve.
    pub utc_offset_minutes: i32,
    /// Base popularity (log-normal, mean around 1): a few flagship stores sell far more.
    pub weight: f64,
    /// Its sellers, as a range of [`World::sellers`].
    pub sellers: Range<usize>,
}

/// Stores, sellers and products, with the popularity laws the stream samples.
#[derive(Clone)]
pub struct World {
    stores: Vec<Store>,
    sellers: Vec<Seller>,
    products: Vec<Product>,
    /// Product index of each popularity rank (rank 0 is the bestseller), a seeded shuffle so
    /// popularity does not follow SKU numbers.
    by_rank: Vec<usize>,
    popularity: Option<Zipf<f64>>,
}

/// A summary: the full world is thousands of lines.
impl std::fmt::Debug for World {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("World")
            .field("stores", &self.stores.len())
            .field("sellers", &self.sellers.len())
            .field("products", &self.products.len())
            .field("popularity", &self.popularity)
            .finish_non_exhaustive()
    }
}

impl World {
    /// Builds the world `config` describes from `rng` (which the caller seeds). `config` must
    /// be valid ([`GeneratorConfig::validate`]).
    pub fn build(config: &GeneratorConfig, rng: &mut ChaCha8Rng) -> Self {
        let cities: Vec<(&str, &str, i32)> = config
            .countries
            .iter()
            .flat_map(|c| {
                c.cities
                    .iter()
                    .map(move |city| (c.code.as_str(), city.as_str(), c.utc_offset_minutes))
            })
            .collect();
        let spp = config.sellers_per_store as usize;
        // sigma 0.8: the busiest of 50 stores sells roughly ten times the quietest.
        let store_weight = LogNormal::new(-0.32, 0.8).ok();
        let mut per_city = vec![0u32; cities.len()];
        let mut stores = Vec::with_capacity(config.stores as usize);
        let mut sellers = Vec::with_capacity(config.stores as usize * spp);
        for i in 0..config.stores as usize {
            let c = i % cities.len();
            let (country, city, offset) = cities[c];
            per_city[c] += 1;
            let store_id = i as i64 + 1;
            let first = sellers.len();
            for j in 0..spp {
                let name = format!(
                    "{} {}",
                    FIRST_NAMES[below(rng, FIRST_NAMES.len())],
                    LAST_NAMES[below(rng, LAST_NAMES.len())]
                );
                sellers.push(Seller {
                    seller_id: (i * spp + j) as i64 + 1,
                    store_id,
                    name,
                });
            }
            stores.push(Store {
                info: StoreInfo {
                    store_id,
                    name: format!("{city} Store {}", per_city[c]),
                    city: city.to_owned(),
                    country: country.to_owned(),
                },
                utc_offset_minutes: offset,
                weight: store_weight.map_or(1.0, |d| d.sample(rng)),
                sellers: first..sellers.len(),
            });
        }

        let mut products = Vec::with_capacity(config.skus as usize);
        for i in 0..config.skus as usize {
            let category = &CATEGORIES[below(rng, CATEGORIES.len())];
            let noun = category.nouns[below(rng, category.nouns.len())];
            let adjective = ADJECTIVES[below(rng, ADJECTIVES.len())];
            let price = LogNormal::new(category.median_price.ln(), 0.5)
                .map_or(category.median_price, |d| d.sample(rng));
            // Whole cents, at least 0.19: a price is what a till would print.
            let cents = ((price * 100.0).round() as i64).max(19);
            products.push(Product {
                sku: SKU_BASE + i as i64,
                name: format!("{adjective} {noun}"),
                category: category.name.to_owned(),
                price: Some(Decimal::new(cents, 2)),
            });
        }
        // Fisher-Yates, spelled out for the same reason as `unit`.
        let mut by_rank: Vec<usize> = (0..products.len()).collect();
        for i in (1..by_rank.len()).rev() {
            by_rank.swap(i, below(rng, i + 1));
        }
        // validate() guarantees n >= 1 and s >= 0, the only ways this can fail; uniform otherwise.
        let popularity = Zipf::new(products.len() as f64, config.zipf_exponent).ok();
        Self {
            stores,
            sellers,
            products,
            by_rank,
            popularity,
        }
    }

    /// Every store, in id order (`store_id` = index + 1).
    pub fn stores(&self) -> &[Store] {
        &self.stores
    }

    /// Every seller, grouped by store.
    pub fn sellers(&self) -> &[Seller] {
        &self.sellers
    }

    /// Every product, in SKU order.
    pub fn products(&self) -> &[Product] {
        &self.products
    }

    /// The sellers of the store at `store_index`.
    pub fn sellers_of(&self, store_index: usize) -> &[Seller] {
        &self.sellers[self.stores[store_index].sellers.clone()]
    }

    /// The product of popularity rank `rank` (0 is the bestseller), if there is one.
    pub fn product_at_rank(&self, rank: usize) -> Option<&Product> {
        self.by_rank.get(rank).map(|&i| &self.products[i])
    }

    /// A product drawn by popularity: rank r (from 1) is chosen with probability
    /// proportional to 1 / r^zipf_exponent.
    pub fn popular_product(&self, rng: &mut ChaCha8Rng) -> &Product {
        let rank = match &self.popularity {
            Some(zipf) => (zipf.sample(rng) as usize).clamp(1, self.by_rank.len()) - 1,
            None => below(rng, self.by_rank.len()),
        };
        &self.products[self.by_rank[rank]]
    }
}

/// Picks stores by popularity times, optionally, the activity of their local hour. The
/// cumulative weights are rebuilt when the wall-clock minute changes, so the choice costs one
/// uniform draw and a binary search.
#[derive(Debug, Clone)]
pub(crate) struct StoreMix {
    curve: bool,
    /// Wall-clock minute the table was built for (`None` before the first pick).
    minute: Option<i64>,
    cumulative: Vec<f64>,
}

impl StoreMix {
    pub(crate) fn new(curve: bool) -> Self {
        Self {
            curve,
            minute: None,
            cumulative: Vec::new(),
        }
    }

    /// The index of a store, chosen with `u` in `[0, 1)` at wall-clock time `now_ms`.
    pub(crate) fn pick(&mut self, world: &World, now_ms: i64, u: f64) -> usize {
        let minute = if self.curve { now_ms.div_euclid(60_000) } else { 0 };
        if self.minute != Some(minute) {
            self.minute = Some(minute);
            self.cumulative.clear();
            let mut total = 0.0;
            for s in &world.stores {
                let activity = if self.curve {
                    activity(now_ms, s.utc_offset_minutes)
                } else {
                    1.0
                };
                total += s.weight * activity;
                self.cumulative.push(total);
            }
        }
        let total = self.cumulative.last().copied().unwrap_or(0.0);
        let target = u * total;
        self.cumulative
            .partition_point(|&c| c <= target)
            .min(self.cumulative.len().saturating_sub(1))
    }
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    fn world(config: &GeneratorConfig) -> World {
        World::build(config, &mut ChaCha8Rng::seed_from_u64(config.seed))
    }

    #[test]
    fn the_world_has_the_configured_shape() {
        let config = GeneratorConfig::default();
        let w = world(&config);
        assert_eq!(w.stores().len(), 50);
        assert_eq!(w.sellers().len(), 50 * 8);
        assert_eq!(w.products().len(), 5000);
        let cities: std::collections::BTreeSet<_> = w.stores().iter().map(|s| &s.info.city).collect();
        let all_cities: usize = config.countries.iter().map(|c| c.cities.len()).sum();
        assert_eq!(cities.len(), all_cities.min(50), "every city gets a store");
        for (i, s) in w.stores().iter().enumerate() {
            assert_eq!(s.info.store_id, i as i64 + 1);
            assert!(w.sellers_of(i).iter().all(|x| x.store_id == s.info.store_id));
            assert_eq!(w.sellers_of(i).len(), 8);
        }
        let ids: std::collections::HashSet<_> = w.sellers().iter().map(|s| s.seller_id).collect();
        assert_eq!(
            ids.len(),
            w.sellers().len(),
            "seller ids are unique across stores"
        );
    }

    #[test]
    fn prices_are_positive_whole_cents() {
        let w = world(&GeneratorConfig::default());
        for p in w.products() {
            let price = p.price.expect("every product has a price");
            assert_eq!(price.scale(), 2, "{price}");
            assert!(price >= Decimal::new(19, 2), "{price}");
        }
        let mut prices: Vec<Decimal> = w.products().iter().filter_map(|p| p.price).collect();
        prices.sort();
        assert!(
            prices[prices.len() - 1] > prices[prices.len() / 2] * Decimal::from(5),
            "a long price tail"
        );
    }

    #[test]
    fn the_same_seed_builds_the_same_world() {
        let config = GeneratorConfig::default();
        let (a, b) = (world(&config), world(&config));
        assert_eq!(a.products(), b.products());
        assert_eq!(a.sellers(), b.sellers());
        assert_eq!(a.stores(), b.stores());
        let c = world(&GeneratorConfig { seed: 43, ..config });
        assert_ne!(a.products(), c.products());
    }

    #[test]
    fn activity_follows_the_local_hour() {
        let midnight_utc = 1_735_689_600_000; // 2025-01-01T00:00:00Z
        let hour = 3_600_000;
        assert_eq!(
            activity(midnight_utc + 3 * hour, 0),
            0.30,
            "03:00 in London is quiet"
        );
        assert_eq!(
            activity(midnight_utc + 12 * hour, 0),
            1.00,
            "noon in London is busy"
        );
        assert_eq!(
            activity(midnight_utc + 3 * hour, 540),
            1.00,
            "03:00 UTC is noon in Tokyo"
        );
        assert_eq!(
            activity(midnight_utc, -300),
            0.90,
            "19:00 the day before in New York"
        );
        assert_eq!(
            activity(midnight_utc + 6 * hour + 30 * 60_000, 330),
            1.00,
            "12:00 in Mumbai"
        );
    }

    #[test]
    fn the_curve_moves_sales_to_where_it_is_daytime() {
        let config = GeneratorConfig::default();
        let w = world(&config);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let share_of = |mix: &mut StoreMix, rng: &mut ChaCha8Rng, now: i64, country: &str| {
            let n = 20_000;
            let hits = (0..n)
                .filter(|_| w.stores()[mix.pick(&w, now, unit(rng))].info.country == country)
                .count();
            hits as f64 / n as f64
        };
        let noon_in_tokyo = 1_735_689_600_000 + 3 * 3_600_000;
        let evening_in_tokyo = 1_735_689_600_000 + 15 * 3_600_000; // 00:00 in Tokyo
        let mut mix = StoreMix::new(true);
        let day = share_of(&mut mix, &mut rng, noon_in_tokyo, "JP");
        let night = share_of(&mut mix, &mut rng, evening_in_tokyo, "JP");
        assert!(
            day > 2.0 * night,
            "Japan's share at noon {day} vs midnight {night}"
        );
    }
}
