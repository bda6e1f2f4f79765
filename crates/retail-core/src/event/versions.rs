//! Event versions: each event type has numbered versions, and an event of an older version is
//! upgraded on read to the version this build decodes (ADR 0027).
//!
//! Why upgrades are declared as data, not code in the decoder: the decoder reads one shape per
//! type (the current one) on its fast path, so a new version costs nothing to events already
//! in that shape; an older event is rewritten once, by these steps, into the current shape and
//! then decoded like any other. The rewritten text is what lands (`events_raw.payload`), so a
//! table holds one shape per type, whatever version its senders write. The steps are the
//! changes that keep old senders working:
//!
//! - [`Step::Add`]: a new optional field with a default, set when the old event lacks it;
//! - [`Step::Rename`]: a field renamed, moved to its new name;
//! - [`Step::Split`]: one field split into several, at a separator (`"Berlin/DE"` into `city` and
//!   `country`).
//!
//! A version a build does not know (newer than its current one, or 0) is refused with the type
//! and the version named: the dead letter of kind `unknown_version`, never a guess. An event
//! without `schema_version` is version 1, the version every type had before versions existed.
//!
//! To evolve a type: raise its number in [`CURRENT`], change the decoder to read the new shape,
//! and add an [`Upgrade`] from the old number to [`UPGRADES`] (README, "Evolving an event").

use std::collections::BTreeMap;

use serde_json::value::RawValue;

/// An event's JSON object, each value kept as its exact text: an upgrade must not pass amounts
/// through `f64` (ADR 0020), so values are moved, never parsed, except a field being split.
pub type Object = BTreeMap<String, Box<RawValue>>;

/// `text` as JSON, for a value the steps insert.
fn raw(text: String) -> Box<RawValue> {
    // Callers pass JSON they wrote (serde_json output or a declared default checked below).
    RawValue::from_string(text).unwrap_or_else(|_| null())
}

fn null() -> Box<RawValue> {
    RawValue::from_string("null".into()).unwrap_or_else(|_| unreachable!("null is JSON"))
}

/// One change between two neighbouring versions of a type, applied to an event's JSON object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// A field the new version has and the old one lacks: `default` (JSON text) when absent.
    Add {
        field: &'static str,
        default: &'static str,
    },
    /// A field renamed from `from` to `to`.
    Rename { from: &'static str, to: &'static str },
    /// A text field split at `separator` into the fields `into`, in order (the last takes the
    /// rest). The old field is removed.
    Split {
        from: &'static str,
        separator: char,
        into: &'static [&'static str],
    },
}

/// The steps from version `from` of a type to `from + 1`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upgrade {
    /// The type's name (`sale` covers `return` and `void`, which share its shape).
    pub type_name: &'static str,
    pub from: u16,
    pub steps: &'static [Step],
    /// What changed, for people (the API's event-type list shows it).
    pub summary: &'static str,
}

/// The version of each type this build decodes and writes. A type not listed is at version 1.
pub const CURRENT: &[(&str, u16)] = &[("order", 2)];

/// Every declared upgrade, oldest first per type.
pub const UPGRADES: &[Upgrade] = &[Upgrade {
    type_name: "order",
    from: 1,
    steps: &[Step::Add {
        field: "channel",
        default: "\"web\"",
    }],
    summary: "adds `channel` (where the order was placed: web, app, store or marketplace); version 1 orders are `web`",
}];

/// The shape family of a type name: `return` and `void` are sales.
fn family(type_name: &str) -> &str {
    match type_name {
        "return" | "void" => "sale",
        other => other,
    }
}

/// The version of `type_name` this build decodes (1 for a type without versions).
pub fn current(type_name: &str) -> u16 {
    let family = family(type_name);
    CURRENT.iter().find(|(t, _)| *t == family).map_or(1, |(_, v)| *v)
}

/// Why an event could not be upgraded; the decoder words it under `schema_version` or the
/// field named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeError {
    /// The field at fault (`schema_version` for an unknown version).
    pub path: String,
    pub message: String,
}

/// Rewrites `object`, an event of `type_name` at `version`, into the current version's shape,
/// and sets its `schema_version` to it.
pub fn upgrade(type_name: &str, version: u16, object: &mut Object) -> Result<(), UpgradeError> {
    let family = family(type_name);
    let target = current(type_name);
    for from in version..target {
        let Some(up) = UPGRADES.iter().find(|u| u.type_name == family && u.from == from) else {
            // A gap in the table is this build's fault; said plainly rather than guessed.
            return Err(UpgradeError {
                path: "schema_version".into(),
                message: format!(
                    "{type_name} version {from} has no declared upgrade to {}",
                    from + 1
                ),
            });
        };
        for step in up.steps {
            apply(step, object)?;
        }
    }
    object.insert("schema_version".into(), raw(target.to_string()));
    Ok(())
}

fn apply(step: &Step, object: &mut Object) -> Result<(), UpgradeError> {
    match *step {
        Step::Add { field, default } => {
            if object.get(field).is_none_or(|v| v.get() == "null") {
                let value = RawValue::from_string(default.to_owned()).map_err(|e| UpgradeError {
                    path: field.into(),
                    message: format!("the declared default {default} is not JSON ({e})"),
                })?;
                object.insert(field.into(), value);
            }
        }
        Step::Rename { from, to } => {
            if let Some(value) = object.remove(from) {
                if object.contains_key(to) {
                    return Err(UpgradeError {
                        path: from.into(),
                        message: format!("renamed to `{to}` in a later version, but the event has both"),
                    });
                }
                object.insert(to.into(), value);
            }
        }
        Step::Split {
            from,
            separator,
            into,
        } => {
            let Some(value) = object.remove(from) else {
                return Ok(());
            };
            let Ok(text) = serde_json::from_str::<String>(value.get()) else {
                return Err(UpgradeError {
                    path: from.into(),
                    message: format!(
                        "must be a string to split into {}, got {}",
                        into.join(", "),
                        value.get()
                    ),
                });
            };
            let parts: Vec<&str> = text.splitn(into.len(), separator).collect();
            if parts.len() != into.len() {
                return Err(UpgradeError {
                    path: from.into(),
                    message: format!(
                        "must have {} parts separated by {separator:?} (for {}), got {text:?}",
                        into.len(),
                        into.join(", ")
                    ),
                });
            }
            for (field, part) in into.iter().zip(parts) {
                let text = serde_json::to_string(part).unwrap_or_default();
                object.insert((*field).into(), raw(text));
            }
        }
    }
    Ok(())
}

/// Whether `version` of `type_name` is one this build reads (1 up to the current one).
pub fn known(type_name: &str, version: u16) -> bool {
    (1..=current(type_name)).contains(&version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn object(v: Value) -> Object {
        serde_json::from_value(v).expect("an object")
    }

    fn value(o: Object) -> Value {
        serde_json::to_value(o).expect("json")
    }

    #[test]
    fn an_order_of_version_1_gets_the_channel_default_and_version_2() {
        let mut o = object(json!({"type": "order", "schema_version": 1, "order_id": "O-1"}));
        upgrade("order", 1, &mut o).expect("upgrades");
        let o = value(o);
        assert_eq!(o["channel"], "web");
        assert_eq!(o["schema_version"], 2);
        // A channel already there is kept.
        let mut o = object(json!({"type": "order", "channel": "app"}));
        upgrade("order", 1, &mut o).expect("upgrades");
        assert_eq!(value(o)["channel"], "app");
    }

    #[test]
    fn each_step_kind_rewrites_its_field() {
        let mut o = object(json!({"cust": "C-1", "place": "Berlin/DE", "x": 1}));
        for step in [
            Step::Rename {
                from: "cust",
                to: "customer_id",
            },
            Step::Split {
                from: "place",
                separator: '/',
                into: &["city", "country"],
            },
            Step::Add {
                field: "channel",
                default: "\"web\"",
            },
        ] {
            apply(&step, &mut o).expect("applies");
        }
        assert_eq!(
            value(o),
            json!({"customer_id": "C-1", "city": "Berlin", "country": "DE", "channel": "web", "x": 1})
        );
    }

    #[test]
    fn a_step_that_cannot_apply_names_the_field() {
        let mut o = object(json!({"place": "Berlin"}));
        let e = apply(
            &Step::Split {
                from: "place",
                separator: '/',
                into: &["city", "country"],
            },
            &mut o,
        )
        .expect_err("one part");
        assert_eq!(e.path, "place");
        assert!(e.message.contains("2 parts"), "{}", e.message);
        let mut o = object(json!({"cust": "a", "customer_id": "b"}));
        let e = apply(
            &Step::Rename {
                from: "cust",
                to: "customer_id",
            },
            &mut o,
        )
        .expect_err("both");
        assert_eq!(e.path, "cust");
    }

    #[test]
    fn versions_known_and_current_per_type() {
        assert_eq!(current("order"), 2);
        assert_eq!(current("sale"), 1);
        assert_eq!(current("return"), 1);
        assert!(known("order", 1) && known("order", 2));
        assert!(!known("order", 3) && !known("order", 0) && !known("sale", 2));
        // Every upgrade a current version needs is declared.
        for (t, v) in CURRENT {
            for from in 1..*v {
                assert!(
                    UPGRADES.iter().any(|u| u.type_name == *t && u.from == from),
                    "{t} {from}"
                );
            }
        }
    }
}
