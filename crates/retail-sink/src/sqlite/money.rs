//! Money in SQLite: exact decimals as integer cents. SQLite has no decimal type, and REAL loses
//! cents (ten 0.10 prices sum to 0.9999999999999999), so every money column (`sales_raw.unit_price`,
//! `product_dim.price`, each decimal column of an aggregate table) holds whole cents in an
//! INTEGER, summed exactly by SQLite's integer arithmetic. A value with more than two decimals
//! has no exact place there and is refused, never rounded (ADR 0020).

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;

/// `d` in whole cents; `None` when it has more than two decimals or does not fit an `i64`.
pub(super) fn to_cents(d: Decimal) -> Option<i64> {
    let d = d.normalize();
    if d.scale() > 2 {
        return None;
    }
    d.checked_mul(Decimal::ONE_HUNDRED)?.to_i64()
}

/// The exact decimal of `cents`, two decimals (`1999` is `19.99`).
pub(super) fn from_cents(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

/// The nearest `f64` of `cents` as an exact decimal: the number the API shows, the same as
/// PostgreSQL's `numeric::float8` of the same sum ([`crate::read::decimal_to_f64`]).
pub(super) fn cents_to_f64(cents: i64) -> f64 {
    crate::read::decimal_to_f64(from_cents(cents))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().expect("decimal")
    }

    #[test]
    fn whole_cents_round_trip_and_finer_amounts_are_refused() {
        for s in ["0", "0.1", "0.10", "19.99", "9999999999.99", "-12.5", "19.990"] {
            let c = to_cents(dec(s)).unwrap_or_else(|| panic!("{s} is whole cents"));
            assert_eq!(from_cents(c), dec(s), "{s}");
        }
        assert_eq!(to_cents(dec("19.99")), Some(1999));
        assert_eq!(to_cents(dec("1.125")), None);
        assert_eq!(to_cents(dec("0.001")), None);
        // Past i64 cents (a price times a quantity can be).
        assert_eq!(to_cents(dec("9999999999.99") * Decimal::from(i32::MAX)), None);
        assert_eq!(cents_to_f64(1999), 19.99);
        // Correctly rounded, as PostgreSQL's numeric::float8 is: ulp 0.125 here, .20 -> .25.
        assert_eq!(
            cents_to_f64(100_001_999_999_895_220),
            1_000_019_999_998_952.0 + 0.25
        );
    }
}
