//! Host bindings for the `lockstep:step` platform world (generated from `wit/`). The capability
//! interfaces it includes are each capability's own bindings; only the step's `host` interface
//! and the `run` export are generated here.

wasmtime::component::bindgen!({
    path: "../wit",
    world: "lockstep:step/platform",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "lockstep:step/host.context": super::store::StepContext,
        "lockstep:common/types": crate::capability::error::wit::lockstep::common::types,
        "lockstep:process/process": crate::capability::process::bindings::lockstep::process::process,
        "lockstep:db/sql": crate::capability::db::bindings::lockstep::db::sql,
        "lockstep:db/mongo": crate::capability::mongo::bindings::lockstep::db::mongo,
        "lockstep:git/repo": crate::capability::git::bindings::lockstep::git::repo,
        "lockstep:kube/cluster": crate::capability::kube::bindings::lockstep::kube::cluster,
    },
});
