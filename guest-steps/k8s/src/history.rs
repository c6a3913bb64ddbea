//! A release's history in the cluster: one ConfigMap per release, as Helm keeps one Secret per
//! release, so no object grows with the history and a deploy's record is one small write.
//!
//! `lockstep.release.<key>.v<N>` holds release N of `<key>`: its manifests, gzipped JSON, under
//! `binaryData`; its number and status as labels, so that the history is one list by label.
//! Release numbers are taken by creating the object: of two deploys racing for N, one is
//! refused, and no deploy starts while another's release is in progress. A release in progress
//! past its deadline (the step's timeout) belongs to a deploy that died: it counts as Failed.

use std::io::{Read, Write};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use lockstep_step::Error;
use lockstep_step::kube::ObjectRef;
use serde_json::{Value, json};

use crate::cluster::Cluster;

/// How many releases the history keeps.
const RELEASES_KEPT: usize = 10;
const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// The label that names the release an object belongs to (on its history and on what it applied).
pub const RELEASE_LABEL: &str = "lockstep.io/release";
const NUMBER_LABEL: &str = "lockstep.io/release-number";
const STATUS_LABEL: &str = "lockstep.io/status";
const DEADLINE_ANNOTATION: &str = "lockstep.io/deadline";
const MANIFESTS_KEY: &str = "manifests.gz";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    InProgress,
    Succeeded,
    Failed,
    RolledBack,
}

impl Status {
    fn name(self) -> &'static str {
        match self {
            Status::InProgress => "InProgress",
            Status::Succeeded => "Succeeded",
            Status::Failed => "Failed",
            Status::RolledBack => "RolledBack",
        }
    }

    fn parse(text: &str) -> Option<Status> {
        [
            Status::InProgress,
            Status::Succeeded,
            Status::Failed,
            Status::RolledBack,
        ]
        .into_iter()
        .find(|s| s.name() == text)
    }
}

/// One release as its history object has it.
#[derive(Debug, Clone)]
pub struct Release {
    pub number: u64,
    pub status: Status,
    /// Seconds since the epoch after which an InProgress release is a failed one.
    deadline: u64,
    /// The history object, as last read or written.
    object: Value,
}

impl Release {
    /// Its status, with an InProgress past its deadline read as Failed.
    pub fn effective_status(&self) -> Status {
        if self.status == Status::InProgress && now() > self.deadline {
            Status::Failed
        } else {
            self.status
        }
    }

    /// The manifests it applied.
    pub fn manifests(&self) -> Result<Vec<Value>, Error> {
        let unreadable = |why: String| {
            Error::Failed(format!(
                "release #{} in {} is not readable: {why}",
                self.number,
                name_of(&self.object)
            ))
        };
        let packed = self
            .object
            .pointer(&format!("/binaryData/{}", MANIFESTS_KEY.replace('/', "~1")))
            .and_then(Value::as_str)
            .ok_or_else(|| unreadable(format!("it has no `binaryData.{MANIFESTS_KEY}`")))?;
        let gzipped = BASE64
            .decode(packed)
            .map_err(|e| unreadable(e.to_string()))?;
        let mut text = String::new();
        flate2::read::GzDecoder::new(gzipped.as_slice())
            .read_to_string(&mut text)
            .map_err(|e| unreadable(e.to_string()))?;
        serde_json::from_str(&text).map_err(|e| unreadable(e.to_string()))
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn name_of(object: &Value) -> String {
    object
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

fn label_of<'a>(object: &'a Value, key: &str) -> Option<&'a str> {
    object
        .pointer("/metadata/labels")
        .and_then(|labels| labels.get(key))
        .and_then(Value::as_str)
}

/// The history of release `key` in the cluster's namespace.
pub struct History<'a> {
    cluster: &'a Cluster<'a>,
    key: &'a str,
}

impl<'a> History<'a> {
    pub fn new(cluster: &'a Cluster<'a>, key: &'a str) -> Self {
        History { cluster, key }
    }

    fn object_name(&self, number: u64) -> String {
        format!("lockstep.release.{}.v{number}", self.key)
    }

    /// Every release, oldest first.
    pub fn releases(&self) -> Result<Vec<Release>, Error> {
        let objects = self
            .cluster
            .client
            .list(
                "v1",
                "ConfigMap",
                Some(self.cluster.namespace()),
                Some(&format!("{RELEASE_LABEL}={},{NUMBER_LABEL}", self.key)),
            )
            .map_err(|e| e.context("reading the release history"))?;
        let mut releases: Vec<Release> = objects
            .into_iter()
            .filter_map(|object| {
                Some(Release {
                    number: label_of(&object, NUMBER_LABEL)?.parse().ok()?,
                    status: Status::parse(label_of(&object, STATUS_LABEL)?)?,
                    deadline: object
                        .pointer("/metadata/annotations")
                        .and_then(|a| a.get(DEADLINE_ANNOTATION))
                        .and_then(Value::as_str)
                        .and_then(|d| d.parse().ok())
                        .unwrap_or(0),
                    object,
                })
            })
            .collect();
        releases.sort_by_key(|r| r.number);
        Ok(releases)
    }

    /// Refuses when the newest release is another deploy's, still in progress.
    pub fn check_idle(&self, releases: &[Release]) -> Result<(), Error> {
        match releases.last() {
            Some(newest) if newest.effective_status() == Status::InProgress => {
                Err(Error::Conflict(format!(
                    "release {} is being deployed by another run (#{} in progress, for at most {} s more); deploy again when it has ended",
                    self.key,
                    newest.number,
                    newest.deadline.saturating_sub(now())
                )))
            }
            _ => Ok(()),
        }
    }

    /// Records release `number` InProgress with `manifests`, until `timeout_seconds` from now.
    /// `Conflict` when another deploy took the number first.
    pub fn begin(
        &self,
        number: u64,
        manifests: &[Value],
        timeout_seconds: u64,
    ) -> Result<Release, Error> {
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gzip.write_all(Value::from(manifests.to_vec()).to_string().as_bytes())
            .and_then(|()| gzip.flush())
            .map_err(|e| Error::Failed(format!("compressing the release: {e}")))?;
        let packed = gzip
            .finish()
            .map_err(|e| Error::Failed(format!("compressing the release: {e}")))?;
        let deadline = now() + timeout_seconds;
        let object = json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": self.object_name(number),
                "labels": {
                    MANAGED_BY: "lockstep",
                    RELEASE_LABEL: self.key,
                    NUMBER_LABEL: number.to_string(),
                    STATUS_LABEL: Status::InProgress.name(),
                },
                "annotations": { DEADLINE_ANNOTATION: deadline.to_string() },
            },
            "binaryData": { MANIFESTS_KEY: BASE64.encode(packed) },
        });
        let stored = self
            .cluster
            .client
            .create(&object, Some(self.cluster.namespace()))
            .map_err(|e| match e {
                Error::Conflict(_) => Error::Conflict(format!(
                    "release {} #{number} was taken by another deploy at the same time; deploy again when it has ended",
                    self.key
                )),
                e => e.context("recording the release"),
            })?;
        Ok(Release {
            number,
            status: Status::InProgress,
            deadline,
            object: stored,
        })
    }

    /// Sets the release's status, if nobody changed its record since it was read.
    pub fn mark(&self, release: &mut Release, status: Status) -> Result<(), Error> {
        let mut object = release.object.clone();
        if let Some(metadata) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            // Server-set fields are not part of what this field manager applies.
            for field in ["managedFields", "uid", "creationTimestamp", "generation"] {
                metadata.remove(field);
            }
            metadata["labels"][STATUS_LABEL] = Value::from(status.name());
        }
        let stored = self
            .cluster
            .client
            .apply(&object, Some(self.cluster.namespace()), false)
            .map_err(|e| match e {
                Error::Conflict(m) => Error::Conflict(format!(
                    "release {} #{} changed while this deploy ran ({m}); its status was not recorded",
                    self.key, release.number
                )),
                e => e.context("recording the release"),
            })?;
        release.status = status;
        release.object = stored;
        Ok(())
    }

    /// Deletes all but the newest [`RELEASES_KEPT`] releases.
    pub fn prune(&self, releases: &[Release]) -> Result<(), Error> {
        let excess = releases.len().saturating_sub(RELEASES_KEPT);
        for old in &releases[..excess] {
            self.cluster.client.delete(&ObjectRef {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                namespace: Some(self.cluster.namespace().to_string()),
                name: name_of(&old.object),
            })?;
        }
        Ok(())
    }
}
