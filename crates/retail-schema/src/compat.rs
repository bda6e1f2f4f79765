//! Compatibility modes, and the check of a candidate schema against a subject's earlier
//! versions. Come here to change what "compatible" means or how a refusal reads.
//!
//! The semantics are Confluent's: BACKWARD means consumers on the new schema can read what
//! producers wrote with the previous one; FORWARD means consumers still on the previous schema
//! can read what producers write with the new one; FULL is both. The `_TRANSITIVE` modes check
//! against every earlier version, not just the latest. The Avro reader/writer rules themselves
//! are apache-avro's `SchemaCompatibility::can_read`; this module picks the pairs to check and
//! turns apache-avro's terse errors into sentences that name the field and the version.

use std::{fmt, panic, str::FromStr};

use apache_avro::{
    error::CompatibilityError, schema::SchemaKind, schema_compatibility::SchemaCompatibility, Schema,
};
use serde::{Deserialize, Serialize};

/// How a subject may evolve. Serialized with Confluent's names (`"BACKWARD"`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    /// Confluent's default: a consumer upgraded first can still read the latest data.
    #[default]
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
    None,
}

impl Compatibility {
    /// Every mode, in Confluent's documentation order.
    pub const ALL: [Self; 7] = [
        Self::Backward,
        Self::BackwardTransitive,
        Self::Forward,
        Self::ForwardTransitive,
        Self::Full,
        Self::FullTransitive,
        Self::None,
    ];

    /// Confluent's name for the mode.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Backward => "BACKWARD",
            Self::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Self::Forward => "FORWARD",
            Self::ForwardTransitive => "FORWARD_TRANSITIVE",
            Self::Full => "FULL",
            Self::FullTransitive => "FULL_TRANSITIVE",
            Self::None => "NONE",
        }
    }

    /// Whether the new schema must read data written with the earlier ones.
    const fn backward(self) -> bool {
        matches!(
            self,
            Self::Backward | Self::BackwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    /// Whether the earlier schemas must read data written with the new one.
    const fn forward(self) -> bool {
        matches!(
            self,
            Self::Forward | Self::ForwardTransitive | Self::Full | Self::FullTransitive
        )
    }

    /// Whether every earlier version counts, not only the latest.
    pub const fn transitive(self) -> bool {
        matches!(
            self,
            Self::BackwardTransitive | Self::ForwardTransitive | Self::FullTransitive
        )
    }
}

impl fmt::Display for Compatibility {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A level that is none of Confluent's seven names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown compatibility level `{0}`: one of BACKWARD, BACKWARD_TRANSITIVE, FORWARD, FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE, NONE")]
pub struct UnknownCompatibility(pub String);

impl FromStr for Compatibility {
    type Err = UnknownCompatibility;

    /// Confluent's names; case is ignored, as clients differ in how they spell them.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|mode| mode.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownCompatibility(s.to_owned()))
    }
}

/// Why a candidate schema was refused: one sentence per broken pair of (reader, writer), each
/// naming the field and the version it breaks against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Incompatible {
    pub messages: Vec<String>,
}

impl fmt::Display for Incompatible {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.messages.join("; "))
    }
}

impl std::error::Error for Incompatible {}

/// Checks `candidate` against a subject's `existing` versions, given oldest first as
/// `(version number, schema)`, under `mode`. An empty history accepts anything: a subject's
/// first schema has nothing to be compatible with.
pub fn check(
    mode: Compatibility,
    candidate: &Schema,
    existing: &[(u32, &Schema)],
) -> Result<(), Incompatible> {
    let against = if mode.transitive() {
        existing
    } else {
        existing.last().map(std::slice::from_ref).unwrap_or(&[])
    };
    let mut messages = Vec::new();
    // Newest first: the latest version's verdict is the one a reader most likely wants.
    for &(version, old) in against.iter().rev() {
        let old_side = Side::Version(version);
        if mode.backward() {
            if let Err(message) = can_read((old, old_side), (candidate, Side::New)) {
                messages.push(message);
            }
        }
        if mode.forward() {
            if let Err(message) = can_read((candidate, Side::New), (old, old_side)) {
                messages.push(message);
            }
        }
    }
    if messages.is_empty() {
        Ok(())
    } else {
        Err(Incompatible { messages })
    }
}

/// Which schema of a pair: the one being checked, or a registered version.
#[derive(Debug, Clone, Copy)]
enum Side {
    New,
    Version(u32),
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::New => f.write_str("the new schema"),
            Self::Version(v) => write!(f, "version {v}"),
        }
    }
}

/// Whether data written with `writer` can be read with `reader`, as a sentence when not.
fn can_read(writer: (&Schema, Side), reader: (&Schema, Side)) -> Result<(), String> {
    let (w, w_side) = writer;
    let (r, r_side) = reader;
    // apache-avro `expect`s its way through a few shapes of schema; a schema anyone can send
    // must not take the request's task down with it, so a panic becomes a refusal.
    let result = panic::catch_unwind(panic::AssertUnwindSafe(|| SchemaCompatibility::can_read(w, r)))
        .map_err(|_| {
            format!(
                "{r_side} can not be checked against {w_side}: the Avro compatibility check failed on this pair of schemas"
            )
        })?;
    result.map_err(|error| {
        format!(
            "{r_side} can not read data written with {w_side}: {}",
            describe(&error, w, w_side, r, r_side)
        )
    })
}

/// apache-avro's error as a sentence: the path of fields down to the break, what each side has
/// there, and which version is which. apache-avro names only the reader's field at each level.
fn describe(error: &CompatibilityError, w: &Schema, w_side: Side, r: &Schema, r_side: Side) -> String {
    let mut path = Vec::new();
    let mut leaf = error;
    while let CompatibilityError::FieldTypeMismatch(name, inner) = leaf {
        path.push(name.as_str());
        leaf = inner;
    }
    let at = if path.is_empty() {
        "the top-level type".to_owned()
    } else {
        format!("field `{}`", path.join("."))
    };
    let types = || Some((type_at(w, &path)?, type_at(r, &path)?));
    match leaf {
        CompatibilityError::MissingDefaultValue(name) => {
            path.push(name);
            format!(
                "reader field `{}` has no default and is missing in the writer's schema ({w_side})",
                path.join(".")
            )
        }
        CompatibilityError::TypeExpected { .. }
        | CompatibilityError::WrongType { .. }
        | CompatibilityError::Inconclusive(_) => match types() {
            Some((wt, rt)) => format!(
                "{at} is `{}` in the writer's schema ({w_side}) and `{}` in the reader's schema ({r_side}), and Avro can not read the one as the other",
                type_name(wt),
                type_name(rt)
            ),
            None => format!("{at}: {leaf}"),
        },
        CompatibilityError::NameMismatch {
            writer_name,
            reader_name,
        } => format!(
            "{at} is named `{writer_name}` in the writer's schema ({w_side}) and `{reader_name}` in the reader's schema ({r_side}); a named type must keep its name"
        ),
        CompatibilityError::MissingSymbols => match types() {
            Some((Schema::Enum(we), Schema::Enum(re))) => {
                let missing: Vec<&str> = we
                    .symbols
                    .iter()
                    .filter(|s| !re.symbols.contains(s))
                    .map(String::as_str)
                    .collect();
                format!(
                    "{at}: the reader's enum ({r_side}) lacks the symbols {missing:?} of the writer's enum ({w_side})"
                )
            }
            _ => format!(
                "{at}: the reader's enum ({r_side}) lacks symbols of the writer's enum ({w_side})"
            ),
        },
        CompatibilityError::MissingUnionElements => format!(
            "{at}: a type the writer may write ({w_side}) has no matching branch in the reader's schema ({r_side})"
        ),
        CompatibilityError::FixedMismatch => format!(
            "{at}: the fixed type differs in name or size between the writer's schema ({w_side}) and the reader's ({r_side})"
        ),
        other => format!("{at}: {other}"),
    }
}

/// The schema at a path of field names, through nested records. A field is found by its name
/// or one of its aliases (the reader's name may be the writer's alias).
fn type_at<'s>(schema: &'s Schema, path: &[&str]) -> Option<&'s Schema> {
    path.iter().try_fold(schema, |schema, name| match schema {
        Schema::Record(record) => record
            .fields
            .iter()
            .find(|f| {
                f.name == *name
                    || f.aliases
                        .as_ref()
                        .is_some_and(|aliases| aliases.iter().any(|a| a == name))
            })
            .map(|f| &f.schema),
        _ => None,
    })
}

/// A short name for a type in a message: `long`, `com.shop.Order`, `union [null, string]`.
fn type_name(schema: &Schema) -> String {
    if let Schema::Union(union) = schema {
        let branches: Vec<String> = union.variants().iter().map(type_name).collect();
        return format!("union [{}]", branches.join(", "));
    }
    if let Some(name) = schema.name() {
        return name.fullname(None);
    }
    match serde_json::to_value(schema) {
        Ok(serde_json::Value::String(primitive)) => primitive,
        Ok(other) => other.to_string(),
        Err(_) => format!("{:?}", SchemaKind::from(schema)).to_lowercase(),
    }
}

#[cfg(test)]
mod tests;
