//! Host bindings for the `lockstep:step` platform world (generated from `wit/`).

wasmtime::component::bindgen!({
    path: "../wit",
    world: "lockstep:step/platform",
    imports: { default: async | trappable },
    exports: { default: async },
    with: {
        "lockstep:step/host.context": super::context::StepContext,
        "lockstep:db/sql.connection": crate::capability::db::SqlConnection,
        "lockstep:db/mongo.connection": crate::capability::mongo::MongoConnection,
        "lockstep:kube/cluster.client": crate::capability::kube::KubeClient,
    },
});

pub use self::lockstep::common::types::Error as WitError;
