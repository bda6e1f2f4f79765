//! The registry's state, pure and synchronous: schemas by global id, subjects and their
//! ordered versions, the global compatibility mode and per-subject overrides.
//!
//! Nothing here does I/O. A mutation is split in two: `plan_*` decides (checks compatibility,
//! picks the next id and version) and returns the [`Change`]s it needs; [`State::apply`] makes
//! them true in memory. Between the two the caller saves the changes to its store
//! ([`crate::SchemaRegistry`]), so a failed save changes nothing. Loading a store is applying
//! its rows, so a restarted registry is the same registry.
//!
//! Deleting follows Confluent too: a soft delete hides a version (or all of a subject's) from
//! reads and checks and keeps its number; a permanent delete, allowed only after a soft one,
//! removes it. Schemas themselves are never deleted, so their ids stay readable for the
//! messages still in the log and are never given to another schema.
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
    store::{Change, ConfigRow, DeleteRow, Rows, SchemaRow, StoreError, VersionRow},
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
        // Anyone can send a schema, and apache-avro's parser `expect`s in places: a panic is
        // an invalid schema, not a lost request.
        let parsed =
            std::panic::catch_unwind(|| Schema::parse_str(text)).map_err(|_| Error::InvalidSchema {
                message: "the Avro parser failed on this schema".to_owned(),
            })?;
        let schema = parsed.map_err(|e| Error::InvalidSchema {
            message: format!("the schema is not valid Avro: {e}"),
        })?;
        let form = serde_json::to_string(&schema).map_err(|e| Error::InvalidSchema {
            message: format!("the schema can not be written back as JSON: {e}"),
        })?;
        Ok(Self { schema, form })
    }
}

/// One version of a subject. A soft-deleted version keeps its number (numbers are never
/// reused while it exists) and its schema stays readable by id, but reads, lookups and
/// compatibility checks pass it by, as in Confluent.
#[derive(Debug, Clone, Copy)]
struct Entry {
    version: u32,
    id: u32,
    deleted: bool,
}

/// Whether a read sees soft-deleted versions (Confluent's `?deleted=true`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Deleted {
    #[default]
    Hidden,
    Included,
}

/// The registry's state. Build it with [`State::from_rows`]; change it only through `apply`.
#[derive(Debug, Default)]
pub struct State {
    schemas: BTreeMap<u32, Stored>,
    ids_by_form: HashMap<String, u32>,
    /// Each subject's versions, in version order.
    subjects: BTreeMap<String, Vec<Entry>>,
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
                Change::DeleteVersion(row) => self.apply_delete(row)?,
                Change::Config(ConfigRow {
                    subject,
                    compatibility,
                }) => match subject {
                    None => self.global = *compatibility,
                    Some(subject) => {
                        self.subject_configs.insert(subject.clone(), *compatibility);
                    }
                },
                Change::ClearConfig { subject } => match subject {
                    None => self.global = Compatibility::default(),
                    Some(subject) => {
                        self.subject_configs.remove(subject);
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
        let broken = |why: &str| {
            Error::Store(StoreError {
                message: format!("version {} of subject `{}` {why}", row.version, row.subject),
                retryable: false,
            })
        };
        if !self.schemas.contains_key(&row.schema_id) {
            return Err(broken(&format!(
                "names schema {}, which no schema row holds",
                row.schema_id
            )));
        }
        let versions = self.subjects.entry(row.subject.clone()).or_default();
        match versions.binary_search_by_key(&row.version, |e| e.version) {
            Ok(_) => Err(broken("appears twice")),
            Err(at) => {
                let entry = Entry {
                    version: row.version,
                    id: row.schema_id,
                    deleted: row.deleted,
                };
                versions.insert(at, entry);
                Ok(())
            }
        }
    }

    fn apply_delete(&mut self, row: &DeleteRow) -> Result<()> {
        let missing = || {
            Error::Store(StoreError {
                message: format!(
                    "deleting version {} of subject `{}`, which does not exist",
                    row.version, row.subject
                ),
                retryable: false,
            })
        };
        let versions = self.subjects.get_mut(&row.subject).ok_or_else(missing)?;
        let at = versions
            .binary_search_by_key(&row.version, |e| e.version)
            .map_err(|_| missing())?;
        if row.permanent {
            versions.remove(at);
            if versions.is_empty() {
                self.subjects.remove(&row.subject);
            }
        } else if let Some(entry) = versions.get_mut(at) {
            entry.deleted = true;
        }
        Ok(())
    }

    /// Registering `text` under `subject`: the registration it comes to and the changes to save
    /// for it, none when the schema is already a live version of the subject (same id and
    /// version back, as Confluent does). Refused if the subject's mode forbids it.
    pub fn plan_register(
        &self,
        subject: &str,
        text: &str,
        schema_type: Option<&str>,
    ) -> Result<(Registered, Vec<Change>)> {
        let parsed = Parsed::new(text, schema_type)?;
        if let Some(existing) = self.find_under(subject, &parsed.form, Deleted::Hidden) {
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
        let known = self
            .ids_by_form
            .get(&parsed.form)
            .and_then(|id| self.schemas.get(id));
        let (id, text) = match known {
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
        // After the highest number ever given, soft-deleted ones included.
        let version = self
            .subjects
            .get(subject)
            .and_then(|versions| versions.last())
            .map_or(1, |e| e.version.saturating_add(1));
        changes.push(Change::NewVersion(VersionRow {
            subject: subject.to_owned(),
            version,
            schema_id: id,
            deleted: false,
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
    pub fn lookup(
        &self,
        subject: &str,
        text: &str,
        schema_type: Option<&str>,
        deleted: Deleted,
    ) -> Result<Registered> {
        self.known(subject, deleted)?;
        let parsed = Parsed::new(text, schema_type)?;
        self.find_under(subject, &parsed.form, deleted)
            .ok_or_else(|| Error::SchemaNotFound {
                what: format!("under subject `{subject}`"),
            })
    }

    /// The schema with global id `id`. Deleting versions never removes a schema: messages
    /// written with it may still wait in the log.
    pub fn schema_by_id(&self, id: u32) -> Option<&Stored> {
        self.schemas.get(&id)
    }

    /// Every schema, by id: what the landing's read cache starts from.
    pub fn schemas(&self) -> impl Iterator<Item = &Stored> {
        self.schemas.values()
    }

    /// Subject names, sorted: those with a live version, or with any version when `deleted`
    /// is included.
    pub fn subjects(&self, deleted: Deleted) -> Vec<&str> {
        self.subjects
            .iter()
            .filter(|(_, versions)| versions.iter().any(|e| visible(e, deleted)))
            .map(|(subject, _)| subject.as_str())
            .collect()
    }

    /// Whether `subject` has a live version.
    pub fn has_subject(&self, subject: &str) -> bool {
        self.known(subject, Deleted::Hidden).is_ok()
    }

    /// The version numbers of `subject`, ascending.
    pub fn versions(&self, subject: &str, deleted: Deleted) -> Result<Vec<u32>> {
        Ok(self.versions_of(subject, deleted)?.map(|e| e.version).collect())
    }

    /// One version of `subject`; `latest` is the latest one visible.
    pub fn version(&self, subject: &str, version: VersionRef, deleted: Deleted) -> Result<Registered> {
        let entry = self.entry(subject, version, deleted)?;
        self.registered(subject, entry.version, entry.id)
    }

    /// Every `(subject, version)` that is schema `id`.
    pub fn schema_versions(&self, id: u32, deleted: Deleted) -> Result<Vec<(String, u32)>> {
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
                    .filter(move |e| e.id == id && visible(e, deleted))
                    .map(move |e| (subject.clone(), e.version))
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
                let entry = self.entry(subject, VersionRef::Number(n), Deleted::Hidden)?;
                vec![(n, self.stored(entry.id)?.schema.as_ref())]
            }
            None | Some(VersionRef::Latest) => {
                self.known(subject, Deleted::Hidden)?;
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

    /// Deleting every version of `subject`: soft (hidden, numbers and schemas kept) or, once
    /// soft-deleted, `permanent`. The version numbers deleted, and the changes to save.
    pub fn plan_delete_subject(&self, subject: &str, permanent: bool) -> Result<(Vec<u32>, Vec<Change>)> {
        let all = self.versions_of(subject, Deleted::Included)?;
        let live: Vec<u32> = self
            .versions_of(subject, Deleted::Hidden)
            .map(|live| live.map(|e| e.version).collect())
            .unwrap_or_default();
        let doomed: Vec<u32> = match (permanent, live.is_empty()) {
            (false, false) => live,
            (false, true) => {
                return Err(Error::SubjectSoftDeleted {
                    subject: subject.to_owned(),
                })
            }
            (true, true) => all.map(|e| e.version).collect(),
            (true, false) => {
                return Err(Error::SubjectNotSoftDeleted {
                    subject: subject.to_owned(),
                })
            }
        };
        let changes = doomed
            .iter()
            .map(|&version| {
                Change::DeleteVersion(DeleteRow {
                    subject: subject.to_owned(),
                    version,
                    permanent,
                })
            })
            .collect();
        Ok((doomed, changes))
    }

    /// Deleting one version of `subject`, soft or, once soft-deleted, `permanent`.
    pub fn plan_delete_version(
        &self,
        subject: &str,
        version: VersionRef,
        permanent: bool,
    ) -> Result<(u32, Change)> {
        let entry = self.entry(subject, version, Deleted::Included)?;
        match (permanent, entry.deleted) {
            (false, true) => Err(Error::VersionSoftDeleted {
                subject: subject.to_owned(),
                version: entry.version,
            }),
            (true, false) => Err(Error::VersionNotSoftDeleted {
                subject: subject.to_owned(),
                version: entry.version,
            }),
            _ => Ok((
                entry.version,
                Change::DeleteVersion(DeleteRow {
                    subject: subject.to_owned(),
                    version: entry.version,
                    permanent,
                }),
            )),
        }
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

    /// Removing the mode of `subject` (it falls back to the global one), or resetting the
    /// global one to BACKWARD.
    pub fn plan_clear_config(&self, subject: Option<&str>) -> Change {
        Change::ClearConfig {
            subject: subject.map(str::to_owned),
        }
    }

    /// The subject's versions visible under `deleted`; a subject with none is not found.
    fn versions_of(&self, subject: &str, deleted: Deleted) -> Result<impl Iterator<Item = &Entry> + '_> {
        let not_found = || Error::SubjectNotFound {
            subject: subject.to_owned(),
        };
        let versions = self.subjects.get(subject).ok_or_else(not_found)?;
        if !versions.iter().any(|e| visible(e, deleted)) {
            return Err(not_found());
        }
        Ok(versions.iter().filter(move |e| visible(e, deleted)))
    }

    /// Not found unless `subject` has a version visible under `deleted`.
    fn known(&self, subject: &str, deleted: Deleted) -> Result<()> {
        self.versions_of(subject, deleted).map(|_| ())
    }

    fn entry(&self, subject: &str, version: VersionRef, deleted: Deleted) -> Result<Entry> {
        let mut versions = self.versions_of(subject, deleted)?;
        let found = match version {
            VersionRef::Latest => versions.last(),
            VersionRef::Number(n) => versions.find(|e| e.version == n),
        };
        found.copied().ok_or_else(|| Error::VersionNotFound {
            subject: subject.to_owned(),
            version: match version {
                VersionRef::Number(n) => n,
                VersionRef::Latest => 0,
            },
        })
    }

    /// The subject's live schemas, oldest first, as the compatibility check takes them.
    fn history(&self, subject: &str) -> Vec<(u32, &Schema)> {
        self.subjects
            .get(subject)
            .into_iter()
            .flatten()
            .filter(|e| !e.deleted)
            .filter_map(|e| Some((e.version, self.schemas.get(&e.id)?.schema.as_ref())))
            .collect()
    }

    fn find_under(&self, subject: &str, form: &str, deleted: Deleted) -> Option<Registered> {
        let entry = self
            .subjects
            .get(subject)?
            .iter()
            .find(|e| visible(e, deleted) && self.schemas.get(&e.id).is_some_and(|s| s.form == form))?;
        self.registered(subject, entry.version, entry.id).ok()
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
    /// Schema rows are never deleted, so an id is never handed out twice. Confluent's ids are
    /// positive Java ints.
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

fn visible(entry: &Entry, deleted: Deleted) -> bool {
    !entry.deleted || deleted == Deleted::Included
}

#[cfg(test)]
mod tests;
