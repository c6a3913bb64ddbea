//! Kubernetes clusters by connector name; objects are JSON values. Needs
//! `grants: { kube: [{ connector, namespaces, kinds, verbs }] }`.

use serde_json::Value;

use crate::__private::bindings::lockstep::kube::cluster as wit;
use crate::Error;

/// Which object: `api_version` as in a manifest (`apps/v1`), `kind` (`Deployment`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectRef {
    pub api_version: String,
    pub kind: String,
    /// `None`: the grant's first namespace.
    pub namespace: Option<String>,
    pub name: String,
}

/// How waiting for a Deployment, StatefulSet or DaemonSet ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    pub ready: u32,
    pub desired: u32,
    /// One line a person can read.
    pub message: String,
}

/// A client on one cluster.
pub struct Client(wit::Client);

fn wit_ref(target: &ObjectRef) -> wit::ObjectRef {
    wit::ObjectRef {
        api_version: target.api_version.clone(),
        kind: target.kind.clone(),
        namespace: target.namespace.clone(),
        name: target.name.clone(),
    }
}

fn object(text: String) -> Result<Value, Error> {
    serde_json::from_str(&text)
        .map_err(|e| Error::Failed(format!("the cluster's answer is not JSON: {e}")))
}

impl Client {
    /// Connects to the cluster of `connector`; `access-denied`, before any I/O, when not granted.
    pub fn open(connector: &str) -> Result<Client, Error> {
        Ok(Client(wit::Client::open(connector)?))
    }

    /// Server-side apply of one object (field manager `lockstep`); with `dry_run` the server
    /// validates and stores nothing. Returns the object as the server now has it.
    pub fn apply(
        &self,
        manifest: &Value,
        namespace: Option<&str>,
        dry_run: bool,
    ) -> Result<Value, Error> {
        object(self.0.apply(&manifest.to_string(), namespace, dry_run)?)
    }

    /// Creates one object; `Conflict` when it exists already, and then nothing is changed: a
    /// name is taken once, by whoever is first. Returns the object as stored.
    pub fn create(&self, manifest: &Value, namespace: Option<&str>) -> Result<Value, Error> {
        object(self.0.create(&manifest.to_string(), namespace)?)
    }

    /// The object, or `None` when it does not exist.
    pub fn get(&self, target: &ObjectRef) -> Result<Option<Value>, Error> {
        self.0.get(&wit_ref(target))?.map(object).transpose()
    }

    /// Objects of a kind in a namespace (every namespace with `None`, where granted), optionally
    /// by label selector.
    pub fn list(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        label_selector: Option<&str>,
    ) -> Result<Vec<Value>, Error> {
        self.0
            .list(api_version, kind, namespace, label_selector)?
            .into_iter()
            .map(object)
            .collect()
    }

    /// Deletes the object; `false` when it did not exist.
    pub fn delete(&self, target: &ObjectRef) -> Result<bool, Error> {
        self.0.delete(&wit_ref(target)).map_err(Into::into)
    }

    /// Waits until the workload has rolled out as `kubectl rollout status` decides. `Failed` when
    /// it cannot progress (its deadline exceeded, pods that cannot start), with the events;
    /// `LimitExceeded` shortly before the step's timeout, so that the step can still record how
    /// its deploy ended (the step then ends as timed out whatever it returns).
    pub fn wait_rollout(&self, target: &ObjectRef) -> Result<Rollout, Error> {
        let rollout = self.0.wait_rollout(&wit_ref(target))?;
        Ok(Rollout {
            ready: rollout.ready,
            desired: rollout.desired,
            message: rollout.message,
        })
    }
}
