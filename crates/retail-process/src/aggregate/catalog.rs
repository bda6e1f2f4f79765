//! The catalog side of the stream-table join: stores, sellers and products, as the latest
//! catalog event of each key left them. Held in memory by the processor, persisted in the
//! store's `*_dim` tables in the same transaction as the batch that carried the event, and
//! reloaded from there at start and after a join miss (another consumer group lands the
//! catalog topic, ADR 0004).

use std::sync::Arc;

use retail_core::EventBody;
use retail_sink::derived::fast_hash::FastMap;
use retail_sink::{CatalogRow, CatalogSnapshot};

/// A store as the join sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreRow {
    /// Name.
    pub name: Arc<str>,
    /// City.
    pub city: Arc<str>,
    /// Country code.
    pub country: Arc<str>,
}

/// A product as the join sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProductRow {
    /// Name.
    pub name: Arc<str>,
    /// Category.
    pub category: Arc<str>,
}

/// The in-memory catalog. Looked up several times per sale, hence the fast hasher.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    stores: FastMap<i64, StoreRow>,
    sellers: FastMap<i64, Arc<str>>,
    products: FastMap<i64, ProductRow>,
}

impl Catalog {
    /// A store by id.
    pub fn store(&self, id: i64) -> Option<&StoreRow> {
        self.stores.get(&id)
    }

    /// A seller's name by id.
    pub fn seller(&self, id: i64) -> Option<&Arc<str>> {
        self.sellers.get(&id)
    }

    /// A product by sku.
    pub fn product(&self, sku: i64) -> Option<&ProductRow> {
        self.products.get(&sku)
    }

    /// Applies one dimension row.
    pub fn apply(&mut self, row: &CatalogRow) {
        match row {
            CatalogRow::Store {
                store_id,
                name,
                city,
                country,
            } => {
                self.stores.insert(
                    *store_id,
                    StoreRow {
                        name: name.as_str().into(),
                        city: city.as_str().into(),
                        country: country.as_str().into(),
                    },
                );
            }
            CatalogRow::Seller { seller_id, name, .. } => {
                self.sellers.insert(*seller_id, name.as_str().into());
            }
            CatalogRow::Product {
                sku, name, category, ..
            } => {
                self.products.insert(
                    *sku,
                    ProductRow {
                        name: name.as_str().into(),
                        category: category.as_str().into(),
                    },
                );
            }
        }
    }

    /// Replaces the content with what the store holds.
    pub fn load(&mut self, snapshot: &CatalogSnapshot) {
        *self = Self::default();
        for row in &snapshot.rows {
            self.apply(row);
        }
    }
}

/// The dimension row a catalog event carries, if it is one.
pub fn row_of(body: &EventBody) -> Option<CatalogRow> {
    match body {
        EventBody::Store(s) => Some(CatalogRow::Store {
            store_id: s.store_id,
            name: s.name.clone(),
            city: s.city.clone(),
            country: s.country.clone(),
        }),
        EventBody::Seller(s) => Some(CatalogRow::Seller {
            seller_id: s.seller_id,
            store_id: s.store_id,
            name: s.name.clone(),
        }),
        EventBody::Product(p) => Some(CatalogRow::Product {
            sku: p.sku,
            name: p.name.clone(),
            category: p.category.clone(),
            price: p.price,
        }),
        _ => None,
    }
}
