//! The registry's state, pure and synchronous: schemas by global id, subjects and their
//! ordered versions, the global compatibility mode and per-subject overrides.
//!
//! Nothing here does I/O. A mutation is split in two: `plan_*` decides (checks compatibility,
//! picks the next id and version) and returns the [`Change`]s it needs; [`State::apply`] makes
//! them true in memory. Between the two the caller saves the changes to its store
//! ([`crate::SchemaRegistry`]), so a failed save changes nothing. Loading a store is applying
//! its rows, so a restarted registry is the same registry.
//!
//! Identity follows Confluent: one schema, one id, whatever subjects it is registered under.
//! Two texts are the same schema when they parse to the same Avro schema, defaults and
//! aliases included (see [`Parsed`]).

use std::{
    collections::{BTreeMap, HashMap},
    str::FromStr,
    sync::Arc,
};

use apache_avro::Schema;

use crate::{
    compat::{self, Compatibility},
    store::{Change, ConfigRow, Rows, SchemaRow, StoreError, VersionRow},
    Error, Result, AVRO,
};

/// A schema held by the registry.
#[derive(Debug, Clone)]
pub struct Stored {
    pub id: u32,
    /// As first registered, byte for byte.
    pub text: String,
    pub schema: Arc<Schema>,
    /// Identity form: see [`Parsed`].
    form: String,
}

/// Where a schema stands under a subject: the answer of register, lookup and version reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    pub subject: String,
    pub version: u32,
    pub id: u32,
    /// The registered text (which may differ in spacing from what was just sent).
    pub text: String,
}

/// A version as a request names it: a number, or the latest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VersionRef {
    Latest,
    Number(u32),
}

impl FromStr for VersionRef {
    type Err = Error;

    /// `latest`, `-1` (Confluent's other spelling of latest) or 1 to 2^31-1.
    fn from_str(s: &str) -> Result<Self> {
        if s == "latest" || s == "-1" {
            return Ok(Self::Latest);
        }
        match s.parse::<i32>() {
            Ok(n) if n >= 1 => Ok(Self::Number(n.unsigned_abs())),
            _ => Err(Error::InvalidVersion {
                version: s.to_owned(),
            }),
        }
    }
}

/// The answer to a compatibility test: `messages` say why not, one per broken pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub is_compatible: bool,
    pub messages: Vec<String>,
}

/// A schema text parsed, with its identity form.
///
/// The identity form is apache-avro's serialization of the parsed schema: key order, spacing
/// and `"type"` spellings no longer matter, but defaults and aliases do. Parsing Canonical Form
/// (`Schema::canonical_form`) would be the obvious key, but it strips defaults and aliases, so
/// adding a default to a field (a real change of compatibility) would get the old id back.
#[derive(Debug)]
pub struct Parsed {
    schema: Schema,
    form: String,
}

impl Parsed {
    /// Parses `text` as a schema of `schema_type` (Confluent's name; absent means AVRO).
    pub fn new(text: &str, schema_type: Option<&str>) -> Result<Self> {
        if let Some(other) = schema_type.filter(|t| !t.eq_ignore_ascii_case(AVRO)) {
            return Err(Error::InvalidSchema {
                message: format!(
                    "schema type `{other}` is not supported: this registry holds only AVRO schemas"
                ),
            });
        }
        let schema = Schema::parse_str(text).map_err(|e| Error::InvalidSchema {
            message: format!("the schema is not valid Avro: {e}"),
        })?;
        let form = serde_json::to_string(&schema).map_err(|e| Error::InvalidSchema {
            message: format!("the schema can not be written back as JSON: {e}"),
        })?;
        Ok(Self { schema, form })
    }
}

/// The registry's state. Build it with [`State::from_rows`]; change it only through `apply`.
#[derive(Debug, Default)]
pub struct State {
    schemas: BTreeMap<u32, Stored>,
    ids_by_form: HashMap<String, u32>,
    /// Each subject's `(version, schema id)`, in version order.
    subjects: BTreeMap<String, Vec<(u32, u32)>>,
    global: Compatibility,
    subject_configs: BTreeMap<String, Compatibility>,
}

impl State {
    /// The state a store's rows describe: schemas first, then versions in order, then config.
    pub fn from_rows(rows: &Rows) -> Result<Self> {
        let mut versions = rows.versions.clone();
        versions.sort_by(|a, b| (&a.subject, a.version).cmp(&(&b.subject, b.version)));
        let changes: Vec<Change> = rows
            .schemas
            .iter()
            .cloned()
            .map(Change::NewSchema)
            .chain(versions.into_iter().map(Change::NewVersion))
            .chain(rows.configs.iter().cloned().map(Change::Config))
            .collect();
        let mut state = Self::default();
        state.apply(&changes)?;
        Ok(state)
    }

    /// Makes `changes` true in memory. Fails, naming the row, only on rows that contradict the
    /// state (a store holding a broken row); planned changes always apply.
    pub fn apply(&mut self, changes: &[Change]) -> Result<()> {
        for change in changes {
            match change {
                Change::NewSchema(row) => self.apply_schema(row)?,
                Change::NewVersion(row) => self.apply_version(row)?,
                Change::Config(ConfigRow {
                    subject,
                    compatibility,
                }) => match subject {
                    None => self.global = *compatibility,
                    Some(subject) => {
                        self.subject_configs.insert(subject.clone(), *compatibility);
                    }
                },
            }
        }
        Ok(())
    }

    fn apply_schema(&mut self, row: &SchemaRow) -> Result<()> {
        let broken = |why: String| {
            Error::Store(StoreError {
                message: format!("schema row {}: {why}", row.id),
                retryable: false,
            })
        };
        if self.schemas.contains_key(&row.id) {
            return Err(broken("the id is taken twice".to_owned()));
        }
        let parsed = Parsed::new(&row.text, Some(&row.schema_type)).map_err(|e| broken(e.to_string()))?;
        self.ids_by_form.entry(parsed.form.clone()).or_insert(row.id);
        self.schemas.insert(
            row.id,
            Stored {
                id: row.id,
                text: row.text.clone(),
                schema: Arc::new(parsed.schema),
                form: parsed.form,
            },
        );
        Ok(())
    }

    fn apply_version(&mut self, row: &VersionRow) -> Result<()> {
        if !self.schemas.contains_key(&row.schema_id) {
            return Err(Error::Store(StoreError {
                message: format!(
                    "version {} of subject `{}` names schema {}, which no schema row holds",
                    row.version, row.subject, row.schema_id
                ),
                retryable: false,
            }));
        }
        let versions = self.subjects.entry(row.subject.clone()).or_default();
        match versions.binary_search_by_key(&row.version, |&(v, _)| v) {
            Ok(_) => Err(Error::Store(StoreError {
                message: format!(
                    "version {} of subject `{}` appears twice",
                    row.version, row.subject
                ),
                retryable: false,
            })),
            Err(at) => {
                versions.insert(at, (row.version, row.schema_id));
                Ok(())
            }
        }
    }

    /// Registering `text` under `subject`: the registration it comes to and the changes to save
    /// for it, none when the schema is already a version of the subject (same id and version
    /// back, as Confluent does). Refused if the subject's mode forbids it.
    pub fn plan_register(
        &self,
        subject: &str,
        text: &str,
        schema_type: Option<&str>,
    ) -> Result<(Registered, Vec<Change>)> {
        let parsed = Parsed::new(text, schema_type)?;
        if let Some(existing) = self.find_under(subject, &parsed.form) {
            return Ok((existing, Vec::new()));
        }
        let history = self.history(subject);
        compat::check(self.compatibility(Some(subject)), &parsed.schema, &history).map_err(
            |incompatible| Error::Incompatible {
                subject: subject.to_owned(),
                incompatible,
            },
        )?;
        let mut changes = Vec::with_capacity(2);
        let (id, text) = match self
            .ids_by_form
            .get(&parsed.form)
            .and_then(|id| self.schemas.get(id))
        {
            Some(stored) => (stored.id, stored.text.clone()),
            None => {
                let id = self.next_id()?;
                changes.push(Change::NewSchema(SchemaRow {
                    id,
                    schema_type: AVRO.to_owned(),
                    text: text.to_owned(),
                }));
                (id, text.to_owned())
            }
        };
        let version = self
            .subjects
            .get(subject)
            .and_then(|versions| versions.last())
            .map_or(1, |&(v, _)| v.saturating_add(1));
        changes.push(Change::NewVersion(VersionRow {
            subject: subject.to_owned(),
            version,
            schema_id: id,
        }));
        let registered = Registered {
            subject: subject.to_owned(),
            version,
            id,
            text,
        };
        Ok((registered, changes))
    }

    /// Where `text` stands under `subject`, if it was registered there.
    pub fn lookup(&self, subject: &str, text: &str, schema_type: Option<&str>) -> Result<Registered> {
        self.versions_of(subject)?;
        let parsed = Parsed::new(text, schema_type)?;
        self.find_under(subject, &parsed.form)
            .ok_or_else(|| Error::SchemaNotFound {
                what: format!("under subject `{subject}`"),
            })
    }

    /// The schema with global id `id`.
    pub fn schema_by_id(&self, id: u32) -> Option<&Stored> {
        self.schemas.get(&id)
    }

    /// Every schema, by id: what the landing's read cache starts from.
    pub fn schemas(&self) -> impl Iterator<Item = &Stored> {
        self.schemas.values()
    }

    /// Subject names, sorted.
    pub fn subjects(&self) -> impl Iterator<Item = &str> {
        self.subjects.keys().map(String::as_str)
    }

    /// Whether `subject` has any version.
    pub fn has_subject(&self, subject: &str) -> bool {
        self.subjects.contains_key(subject)
    }

    /// The version numbers of `subject`, ascending.
    pub fn versions(&self, subject: &str) -> Result<Vec<u32>> {
        Ok(self.versions_of(subject)?.iter().map(|&(v, _)| v).collect())
    }

    /// One version of `subject`.
    pub fn version(&self, subject: &str, version: VersionRef) -> Result<Registered> {
        let versions = self.versions_of(subject)?;
        let found = match version {
            VersionRef::Latest => versions.last(),
            VersionRef::Number(n) => versions.iter().find(|&&(v, _)| v == n),
        };
        let &(version, id) = found.ok_or_else(|| Error::VersionNotFound {
            subject: subject.to_owned(),
            version: match version {
                VersionRef::Number(n) => n,
                VersionRef::Latest => 0,
            },
        })?;
        self.registered(subject, version, id)
    }

    /// Every `(subject, version)` that is schema `id`.
    pub fn schema_versions(&self, id: u32) -> Result<Vec<(String, u32)>> {
        if !self.schemas.contains_key(&id) {
            return Err(Error::SchemaNotFound {
                what: format!("with id {id}"),
            });
        }
        Ok(self
            .subjects
            .iter()
            .flat_map(|(subject, versions)| {
                versions
                    .iter()
                    .filter(move |&&(_, schema_id)| schema_id == id)
                    .map(move |&(version, _)| (subject.clone(), version))
            })
            .collect())
    }

    /// Whether `text` could be registered under `subject`: against `version` alone when one is
    /// named, else (`None` or latest) against what registering would check under the subject's
    /// mode. Changes nothing.
    pub fn test_compatibility(
        &self,
        subject: &str,
        version: Option<VersionRef>,
        text: &str,
        schema_type: Option<&str>,
    ) -> Result<Verdict> {
        let parsed = Parsed::new(text, schema_type)?;
        let mode = self.compatibility(Some(subject));
        let history = match version {
            Some(VersionRef::Number(n)) => {
                let registered = self.version(subject, VersionRef::Number(n))?;
                let stored = self.stored(registered.id)?;
                vec![(n, stored.schema.as_ref())]
            }
            None | Some(VersionRef::Latest) => {
                self.versions_of(subject)?;
                self.history(subject)
            }
        };
        Ok(match compat::check(mode, &parsed.schema, &history) {
            Ok(()) => Verdict {
                is_compatible: true,
                messages: Vec::new(),
            },
            Err(incompatible) => Verdict {
                is_compatible: false,
                messages: incompatible.messages,
            },
        })
    }

    /// The mode that applies: the subject's own if set, else the global one.
    pub fn compatibility(&self, subject: Option<&str>) -> Compatibility {
        subject
            .and_then(|s| self.subject_compatibility(s))
            .unwrap_or(self.global)
    }

    /// The subject's own mode, if one was set.
    pub fn subject_compatibility(&self, subject: &str) -> Option<Compatibility> {
        self.subject_configs.get(subject).copied()
    }

    /// Setting the mode of `subject`, or the global one.
    pub fn plan_config(&self, subject: Option<&str>, compatibility: Compatibility) -> Change {
        Change::Config(ConfigRow {
            subject: subject.map(str::to_owned),
            compatibility,
        })
    }

    fn versions_of(&self, subject: &str) -> Result<&[(u32, u32)]> {
        self.subjects
            .get(subject)
            .map(Vec::as_slice)
            .ok_or_else(|| Error::SubjectNotFound {
                subject: subject.to_owned(),
            })
    }

    /// The subject's schemas, oldest first, as the compatibility check takes them.
    fn history(&self, subject: &str) -> Vec<(u32, &Schema)> {
        self.subjects
            .get(subject)
            .into_iter()
            .flatten()
            .filter_map(|&(version, id)| Some((version, self.schemas.get(&id)?.schema.as_ref())))
            .collect()
    }

    fn find_under(&self, subject: &str, form: &str) -> Option<Registered> {
        let versions = self.subjects.get(subject)?;
        let &(version, id) = versions
            .iter()
            .find(|&&(_, id)| self.schemas.get(&id).is_some_and(|s| s.form == form))?;
        self.registered(subject, version, id).ok()
    }

    fn registered(&self, subject: &str, version: u32, id: u32) -> Result<Registered> {
        Ok(Registered {
            subject: subject.to_owned(),
            version,
            id,
            text: self.stored(id)?.text.clone(),
        })
    }

    fn stored(&self, id: u32) -> Result<&Stored> {
        self.schemas.get(&id).ok_or_else(|| Error::SchemaNotFound {
            what: format!("with id {id}"),
        })
    }

    /// Max + 1, so ids follow from the rows alone and a restart hands out the same ones.
    /// Confluent's ids are positive Java ints.
    fn next_id(&self) -> Result<u32> {
        let next = self
            .schemas
            .keys()
            .next_back()
            .map_or(1, |max| max.saturating_add(1));
        if next > i32::MAX.unsigned_abs() {
            return Err(Error::Store(StoreError {
                message: "every schema id up to 2147483647 is taken".to_owned(),
                retryable: false,
            }));
        }
        Ok(next)
    }
}

#[cfg(test)]
mod tests;
