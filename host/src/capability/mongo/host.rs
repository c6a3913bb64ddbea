//! The `lockstep:db/mongo` host functions, on the databases' [`DbView`].

use wasmtime::component::Resource;

use super::bindings::lockstep::db::mongo as wit;
use super::connection::MongoConnection;
use crate::capability::db::DbView;
use crate::capability::{Error, WitError};

impl wit::Host for DbView<'_> {}

impl wit::HostConnection for DbView<'_> {
    async fn open(
        &mut self,
        instance: String,
    ) -> wasmtime::Result<Result<Resource<MongoConnection>, WitError>> {
        self.open_granted(&instance, |target| async move {
            MongoConnection::open(&target).await
        })
        .await
    }

    async fn database(&mut self, handle: Resource<MongoConnection>) -> wasmtime::Result<String> {
        Ok(self.table.get(&handle)?.database().to_string())
    }

    async fn run_command(
        &mut self,
        handle: Resource<MongoConnection>,
        command: String,
    ) -> wasmtime::Result<Result<String, WitError>> {
        let connection = self.table.get_mut(&handle)?;
        Ok(connection
            .run_command(&command)
            .await
            .map_err(|e| Error::from(e).into()))
    }

    async fn transaction_session(
        &mut self,
        handle: Resource<MongoConnection>,
    ) -> wasmtime::Result<Result<Option<String>, WitError>> {
        let connection = self.table.get_mut(&handle)?;
        Ok(connection
            .transaction_session()
            .await
            .map_err(|e| Error::from(e).into()))
    }

    async fn start_transaction(
        &mut self,
        handle: Resource<MongoConnection>,
    ) -> wasmtime::Result<Result<(), WitError>> {
        let connection = self.table.get_mut(&handle)?;
        Ok(connection
            .start_transaction()
            .await
            .map_err(|e| Error::from(e).into()))
    }

    async fn commit_transaction(
        &mut self,
        handle: Resource<MongoConnection>,
    ) -> wasmtime::Result<Result<(), WitError>> {
        let connection = self.table.get_mut(&handle)?;
        Ok(connection
            .commit_transaction()
            .await
            .map_err(|e| Error::from(e).into()))
    }

    async fn abort_transaction(
        &mut self,
        handle: Resource<MongoConnection>,
    ) -> wasmtime::Result<Result<(), WitError>> {
        let connection = self.table.get_mut(&handle)?;
        Ok(connection
            .abort_transaction()
            .await
            .map_err(|e| Error::from(e).into()))
    }

    async fn run_admin_command(
        &mut self,
        handle: Resource<MongoConnection>,
        command: String,
    ) -> wasmtime::Result<Result<String, WitError>> {
        let connection = self.table.get(&handle)?;
        Ok(connection
            .run_admin_command(&command)
            .await
            .map_err(|e| Error::from(e).into()))
    }

    async fn drop(&mut self, handle: Resource<MongoConnection>) -> wasmtime::Result<()> {
        self.close(handle)
    }
}
