//! How the double's controllers answer a write to a workload: the status a Deployment,
//! StatefulSet or DaemonSet reports, and, for an image that cannot be pulled, pods stuck in
//! `ImagePullBackOff` with their events, as the kubelet would leave them.

use serde_json::{Value, json};

use super::{Rollout, State};

/// Sets the workload's status after a write, as its controller would.
pub fn start_rollout(state: &mut State, kind: &str, key: &str, name: &str, namespace: &str) {
    match kind {
        "Deployment" => deployment(state, key, name, namespace),
        "StatefulSet" => stateful_set(state, key),
        "DaemonSet" => daemon_set(state, key),
        _ => {}
    }
}

fn number(object: &Value, pointer: &str, default: u64) -> u64 {
    object
        .pointer(pointer)
        .and_then(Value::as_u64)
        .unwrap_or(default)
}

fn images(object: &Value) -> Vec<String> {
    object
        .pointer("/spec/template/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| {
            cs.iter()
                .filter_map(|c| c["image"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn deployment(state: &mut State, key: &str, name: &str, namespace: &str) {
    let Some(object) = state.objects.get(key).cloned() else {
        return;
    };
    let broken = images(&object)
        .into_iter()
        .find(|i| state.broken_images.contains(i));
    let rollout = state
        .rollouts
        .get(name)
        .copied()
        .unwrap_or(Rollout::Succeeds);
    let generation = object
        .pointer("/metadata/generation")
        .cloned()
        .unwrap_or(json!(1));
    let desired = number(&object, "/spec/replicas", 1);
    let status = match (&broken, rollout) {
        (Some(image), _) => {
            stuck_pod(state, &object, name, namespace, image);
            json!({"observedGeneration": generation, "replicas": desired + 1, "updatedReplicas": 1, "readyReplicas": desired, "availableReplicas": desired, "unavailableReplicas": 1,
                "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}, {"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated"}]})
        }
        (None, Rollout::Succeeds) => complete(&generation, desired),
        (None, Rollout::Slow(reads)) => {
            state.slow.insert(key.to_string(), reads);
            json!({"observedGeneration": generation, "replicas": desired, "updatedReplicas": 0, "readyReplicas": 0, "availableReplicas": 0})
        }
        (None, Rollout::Fails) => {
            let message = format!("ReplicaSet \"{name}-7d9f8c\" has timed out progressing.");
            event(
                state,
                namespace,
                "Deployment",
                name,
                &format!("Scaled up replica set {name}-7d9f8c to {desired}"),
            );
            // Its pods never became ready: what they say is why.
            if let Some(image) = images(&object).first() {
                stuck_pod(state, &object, name, namespace, image);
            }
            json!({"observedGeneration": generation, "replicas": desired, "updatedReplicas": 0, "readyReplicas": 0, "availableReplicas": 0, "unavailableReplicas": desired,
                "conditions": [{"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable"}, {"type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded", "message": message}]})
        }
    };
    if let Some(object) = state.objects.get_mut(key) {
        object["status"] = status;
    }
}

/// A pod of the new template that cannot pull `image`, and the kubelet's event about it.
fn stuck_pod(state: &mut State, workload: &Value, name: &str, namespace: &str, image: &str) {
    let pod_name = format!("{name}-5d8f7c9b4-x2x7q");
    let labels = workload
        .pointer("/spec/template/metadata/labels")
        .cloned()
        .unwrap_or(json!({}));
    let containers = workload
        .pointer("/spec/template/spec/containers")
        .cloned()
        .unwrap_or(json!([]));
    let statuses: Vec<Value> = containers
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            let waiting = if c["image"] == image {
                json!({"reason": "ImagePullBackOff", "message": format!("Back-off pulling image \"{image}\"")})
            } else {
                json!({"reason": "ContainerCreating"})
            };
            json!({"name": c["name"], "image": c["image"], "ready": false, "restartCount": 0, "state": {"waiting": waiting}})
        })
        .collect();
    state.resource_version += 1;
    let pod = json!({"apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": pod_name, "namespace": namespace, "labels": labels, "resourceVersion": state.resource_version.to_string()},
        "spec": {"containers": containers},
        "status": {"phase": "Pending", "containerStatuses": statuses}});
    state
        .objects
        .insert(format!("pods/{namespace}/{pod_name}"), pod);
    event(
        state,
        namespace,
        "Pod",
        &pod_name,
        &format!(
            "Failed to pull image \"{image}\": rpc error: code = NotFound desc = failed to pull and unpack image \"{image}\": not found"
        ),
    );
}

fn event(state: &mut State, namespace: &str, kind: &str, name: &str, message: &str) {
    state.resource_version += 1;
    let event_name = format!("{name}.{}", state.resource_version);
    let event = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"name": event_name, "namespace": namespace, "resourceVersion": state.resource_version.to_string()},
        "involvedObject": {"kind": kind, "name": name, "namespace": namespace}, "reason": "Failed", "message": message, "type": "Warning"});
    state
        .objects
        .insert(format!("events/{namespace}/{event_name}"), event);
}

/// Partitioned updates leave the pods below the partition at the old revision.
fn stateful_set(state: &mut State, key: &str) {
    let Some(object) = state.objects.get_mut(key) else {
        return;
    };
    let generation = number(object, "/metadata/generation", 1);
    let replicas = number(object, "/spec/replicas", 1);
    let partition = number(object, "/spec/updateStrategy/rollingUpdate/partition", 0);
    let updated = replicas.saturating_sub(partition);
    let current = if updated == replicas {
        generation
    } else {
        generation - 1
    };
    object["status"] = json!({"observedGeneration": generation, "replicas": replicas, "readyReplicas": replicas, "currentReplicas": replicas - updated, "updatedReplicas": updated,
        "currentRevision": format!("rev-{current}"), "updateRevision": format!("rev-{generation}")});
}

/// One node: one pod, updated and available at once.
fn daemon_set(state: &mut State, key: &str) {
    let Some(object) = state.objects.get_mut(key) else {
        return;
    };
    let generation = number(object, "/metadata/generation", 1);
    object["status"] = json!({"observedGeneration": generation, "desiredNumberScheduled": 1, "currentNumberScheduled": 1, "updatedNumberScheduled": 1, "numberReady": 1, "numberAvailable": 1});
}

pub fn complete(generation: &Value, desired: u64) -> Value {
    json!({"observedGeneration": generation, "replicas": desired, "updatedReplicas": desired, "readyReplicas": desired, "availableReplicas": desired,
        "conditions": [{"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"}, {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]})
}

/// A slow rollout completes after its reads run out.
pub fn progress_slow_rollout(state: &mut State, key: &str) {
    let Some(left) = state.slow.get_mut(key) else {
        return;
    };
    if *left > 0 {
        *left -= 1;
        return;
    }
    state.slow.remove(key);
    if let Some(object) = state.objects.get_mut(key) {
        let generation = object
            .pointer("/metadata/generation")
            .cloned()
            .unwrap_or(json!(1));
        let desired = number(object, "/spec/replicas", 1);
        object["status"] = complete(&generation, desired);
    }
}
