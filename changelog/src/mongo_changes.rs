//! The eight change types of liquibase-mongodb 4.28, their checksums, the commands they run and
//! their automatic rollbacks.
//!
//! Fields are kept as the changelog wrote them (strings of shell-style JSON), because the checksum
//! is computed over that text.

use serde_json::{Map, Value, json};

use crate::checksum::{self, CheckSum, ChecksumVersion};
use crate::mongo_json;

#[derive(Debug, Clone, PartialEq)]
pub enum MongoChange {
    CreateCollection {
        collection: String,
        options: Option<String>,
    },
    DropCollection {
        collection: String,
    },
    CreateIndex {
        collection: String,
        keys: String,
        options: Option<String>,
    },
    DropIndex {
        collection: String,
        keys: String,
    },
    InsertOne {
        collection: String,
        document: String,
        options: Option<String>,
    },
    InsertMany {
        collection: String,
        documents: String,
        options: Option<String>,
    },
    RunCommand {
        command: String,
    },
    AdminCommand {
        command: String,
    },
}

/// A command and the database it goes to.
#[derive(Debug, Clone, PartialEq)]
pub struct MongoCommand {
    /// Runs against `admin` rather than the instance's database.
    pub admin: bool,
    pub body: Map<String, Value>,
}

impl MongoChange {
    pub fn name(&self) -> &'static str {
        match self {
            MongoChange::CreateCollection { .. } => "createCollection",
            MongoChange::DropCollection { .. } => "dropCollection",
            MongoChange::CreateIndex { .. } => "createIndex",
            MongoChange::DropIndex { .. } => "dropIndex",
            MongoChange::InsertOne { .. } => "insertOne",
            MongoChange::InsertMany { .. } => "insertMany",
            MongoChange::RunCommand { .. } => "runCommand",
            MongoChange::AdminCommand { .. } => "adminCommand",
        }
    }

    fn collection(&self) -> Option<&str> {
        match self {
            MongoChange::CreateCollection { collection, .. }
            | MongoChange::DropCollection { collection }
            | MongoChange::CreateIndex { collection, .. }
            | MongoChange::DropIndex { collection, .. }
            | MongoChange::InsertOne { collection, .. }
            | MongoChange::InsertMany { collection, .. } => Some(collection),
            MongoChange::RunCommand { .. } | MongoChange::AdminCommand { .. } => None,
        }
    }

    /// liquibase-mongodb's checksum: the string fields concatenated, a missing one as `null`.
    pub fn checksum(&self, version: ChecksumVersion) -> CheckSum {
        let fields: Vec<Option<&str>> = match self {
            MongoChange::CreateCollection {
                collection,
                options,
            } => vec![Some(collection), options.as_deref()],
            MongoChange::DropCollection { collection } => vec![Some(collection)],
            MongoChange::CreateIndex {
                collection,
                keys,
                options,
            } => vec![Some(collection), Some(keys), options.as_deref()],
            MongoChange::DropIndex { collection, keys } => vec![Some(collection), Some(keys)],
            MongoChange::InsertOne {
                collection,
                document,
                options,
            } => vec![Some(collection), Some(document), options.as_deref()],
            MongoChange::InsertMany {
                collection,
                documents,
                options,
            } => vec![Some(collection), Some(documents), options.as_deref()],
            MongoChange::RunCommand { command } | MongoChange::AdminCommand { command } => {
                vec![Some(command)]
            }
        };
        checksum::mongo(version, &fields)
    }

    /// DESCRIPTION, as Liquibase writes it: `createCollection collectionName=people`.
    pub fn description(&self) -> String {
        match self.collection() {
            Some(collection) => format!("{} collectionName={collection}", self.name()),
            None => self.name().to_string(),
        }
    }

    /// The command this change runs, as liquibase-mongodb builds it.
    pub fn command(&self) -> Result<MongoCommand, String> {
        let document = |field: &str, text: &str| {
            mongo_json::parse_document(text).map_err(|e| format!("{} `{field}`: {e}", self.name()))
        };
        let options = |text: &Option<String>| {
            text.as_deref()
                .map_or(Ok(Map::new()), |t| document("options", t))
        };
        let with = |mut body: Map<String, Value>, extra: Map<String, Value>| {
            body.extend(extra);
            body
        };
        let one = |key: &str, value: Value| Map::from_iter([(key.to_string(), value)]);
        let body = match self {
            MongoChange::CreateCollection {
                collection,
                options: given,
            } => with(one("create", json!(collection)), options(given)?),
            MongoChange::DropCollection { collection } => one("drop", json!(collection)),
            MongoChange::CreateIndex {
                collection,
                keys,
                options: given,
            } => {
                let keys = document("keys", keys)?;
                let mut index = with(
                    Map::from_iter([("key".to_string(), Value::Object(keys.clone()))]),
                    options(given)?,
                );
                // The driver names an unnamed index the way the server would: `a_1_b_-1`.
                if !index.contains_key("name") {
                    index.insert("name".into(), json!(default_index_name(&keys)));
                }
                with(
                    one("createIndexes", json!(collection)),
                    one("indexes", json!([index])),
                )
            }
            MongoChange::DropIndex { collection, keys } => with(
                one("dropIndexes", json!(collection)),
                one("index", Value::Object(document("keys", keys)?)),
            ),
            MongoChange::InsertOne {
                collection,
                document: given,
                options: extra,
            } => with(
                with(
                    one("insert", json!(collection)),
                    one("documents", json!([document("document", given)?])),
                ),
                options(extra)?,
            ),
            MongoChange::InsertMany {
                collection,
                documents,
                options: extra,
            } => {
                let documents = match mongo_json::parse(documents)
                    .map_err(|e| format!("insertMany `documents`: {e}"))?
                {
                    Value::Array(items) if items.iter().all(Value::is_object) => items,
                    _ => return Err(
                        "insertMany `documents` must be an array of documents: [ { … }, { … } ]"
                            .into(),
                    ),
                };
                with(
                    with(
                        one("insert", json!(collection)),
                        one("documents", Value::Array(documents)),
                    ),
                    options(extra)?,
                )
            }
            MongoChange::RunCommand { command } | MongoChange::AdminCommand { command } => {
                document("command", command)?
            }
        };
        Ok(MongoCommand {
            admin: matches!(self, MongoChange::AdminCommand { .. }),
            body,
        })
    }

    /// The automatic rollback, if liquibase-mongodb has one.
    pub fn inverse(&self) -> Result<MongoChange, String> {
        match self {
            MongoChange::CreateCollection { collection, .. } => Ok(MongoChange::DropCollection {
                collection: collection.clone(),
            }),
            MongoChange::CreateIndex {
                collection, keys, ..
            } => Ok(MongoChange::DropIndex {
                collection: collection.clone(),
                keys: keys.clone(),
            }),
            other => Err(format!("{} has no automatic rollback", other.name())),
        }
    }
}

fn default_index_name(keys: &Map<String, Value>) -> String {
    keys.iter()
        .map(|(field, direction)| {
            let direction = match direction {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{field}_{direction}")
        })
        .collect::<Vec<_>>()
        .join("_")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::ChecksumVersion::V9;

    /// The golden vectors are changeset checksums of a changeset holding the one change.
    #[test]
    fn checksums_match_liquibase_mongodb() {
        let of = |change: MongoChange| checksum::changeset(V9, &[change.checksum(V9)]).to_string();
        let results = MongoChange::InsertOne {
            collection: "results".into(),
            document: "{ info: \"notExistsAnyDocumentInCollection1\" }".into(),
            options: None,
        };
        assert_eq!(of(results), "9:af9b299cda217428f9d082b71472c7c2");
        let one = MongoChange::InsertOne {
            collection: "collection1".into(),
            document: "{ id: 1 }".into(),
            options: None,
        };
        assert_eq!(of(one), "9:dea86a555a8faa2df648fc3d5b0a26ab");
    }

    #[test]
    fn commands_as_liquibase_mongodb_builds_them() {
        let index = MongoChange::CreateIndex {
            collection: "people".into(),
            keys: "{ email: 1, age: -1 }".into(),
            options: Some("{ unique: true }".into()),
        };
        assert_eq!(
            Value::Object(index.command().unwrap().body),
            json!({"createIndexes": "people", "indexes": [{"key": {"email": 1, "age": -1}, "unique": true, "name": "email_1_age_-1"}]})
        );
        let create = MongoChange::CreateCollection {
            collection: "people".into(),
            options: Some("{ capped: false }".into()),
        };
        assert_eq!(
            Value::Object(create.command().unwrap().body),
            json!({"create": "people", "capped": false})
        );
        let many = MongoChange::InsertMany {
            collection: "people".into(),
            documents: "[{a: 1}, {a: 2}]".into(),
            options: None,
        };
        assert_eq!(
            Value::Object(many.command().unwrap().body),
            json!({"insert": "people", "documents": [{"a": 1}, {"a": 2}]})
        );
        assert!(
            MongoChange::AdminCommand {
                command: "{ ping: 1 }".into()
            }
            .command()
            .unwrap()
            .admin
        );
        assert_eq!(index.description(), "createIndex collectionName=people");
    }

    #[test]
    fn inverses_and_bad_json() {
        let create = MongoChange::CreateCollection {
            collection: "people".into(),
            options: None,
        };
        assert_eq!(
            create.inverse().unwrap(),
            MongoChange::DropCollection {
                collection: "people".into()
            }
        );
        assert!(
            MongoChange::InsertOne {
                collection: "c".into(),
                document: "{}".into(),
                options: None
            }
            .inverse()
            .is_err()
        );
        let bad = MongoChange::InsertOne {
            collection: "c".into(),
            document: "{ a: }".into(),
            options: None,
        };
        assert!(
            bad.command()
                .unwrap_err()
                .starts_with("insertOne `document`")
        );
    }
}
