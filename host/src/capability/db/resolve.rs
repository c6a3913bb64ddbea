//! A `dbInstance` of lockstep.yaml, resolved: where its database is, with its password.

use super::grant::DbTarget;
use crate::config::{Config, ConnectorSpec, Refusal};

/// Where the database of `instance` is, with its password filled in from its secret.
pub fn target(config: &Config, instance: &str) -> Result<DbTarget, Refusal> {
    let db = config.db_instances.get(instance).ok_or_else(|| {
        Refusal::Configuration(format!(
            "db instance `{instance}` is not defined in lockstep.yaml"
        ))
    })?;
    let connector = &config.connectors[&db.connector];
    match &connector.spec {
        ConnectorSpec::Postgres { url, password_ref } => {
            let mut postgres: tokio_postgres::Config = url.parse().map_err(|e| {
                Refusal::Configuration(format!(
                    "connector `{}`: `url` is not a PostgreSQL URL: {e}",
                    db.connector
                ))
            })?;
            if let Some(database) = &db.database {
                postgres.dbname(database);
            }
            if let Some(secret) = password_ref {
                postgres.password(config.secret(secret)?);
            }
            Ok(DbTarget::Postgres {
                config: Box::new(postgres),
                allow_superuser: db.allow_superuser,
            })
        }
        ConnectorSpec::Mysql { url, password_ref } => {
            let opts = mysql_async::Opts::from_url(url).map_err(|e| {
                Refusal::Configuration(format!(
                    "connector `{}`: `url` is not a MySQL URL (mysql://user@host:3306/database): {e}",
                    db.connector
                ))
            })?;
            let mut opts = mysql_async::OptsBuilder::from_opts(opts);
            if let Some(database) = &db.database {
                opts = opts.db_name(Some(database));
            }
            if let Some(secret) = password_ref {
                opts = opts.pass(Some(config.secret(secret)?));
            }
            let opts = mysql_async::Opts::from(opts);
            // Without a database a session reaches every database the user may use.
            if opts.db_name().is_none() {
                return Err(Refusal::Configuration(format!(
                    "db instance `{instance}`: say which MySQL database, with `database:` on the instance or at the end of the connector's `url`"
                )));
            }
            Ok(DbTarget::Mysql {
                opts: Box::new(opts),
                allow_superuser: db.allow_superuser,
            })
        }
        ConnectorSpec::Sqlite { path } => Ok(DbTarget::Sqlite { path: path.clone() }),
        ConnectorSpec::MongoDB { uri, password_ref } => {
            // The instance's `database`, else the one the URI names (`mongodb://host/app`).
            let from_uri = uri
                .split_once("://")
                .and_then(|(_, rest)| rest.split_once('/'))
                .map(|(_, path)| path.split('?').next().unwrap_or_default().to_string())
                .filter(|d| !d.is_empty());
            let database = db.database.clone().or(from_uri).ok_or_else(|| {
                Refusal::Configuration(format!("db instance `{instance}`: say which MongoDB database, with `database:` on the instance or in the connector's `uri`"))
            })?;
            let password = password_ref
                .as_ref()
                .map(|secret| config.secret(secret))
                .transpose()?;
            Ok(DbTarget::Mongo {
                uri: uri.clone(),
                database,
                password,
                admin_commands: db.admin_commands,
            })
        }
        _ => Err(Refusal::Configuration(format!(
            "db instance `{instance}` uses a {:?} connector, not a database one",
            connector.kind()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_resolves_to_its_connectors_database_with_its_secret() {
        // SAFETY: set before it is read; no other test uses this variable.
        unsafe { std::env::set_var("LOCKSTEP_RESOLVE_TEST_PASSWORD", "pw-from-env") };
        let text = "connectors:\n  pg: { type: Postgres, url: 'postgres://app@127.0.0.1/app', passwordRef: pw }\n  m: { type: MongoDB, uri: 'mongodb://h/orders' }\nsecrets:\n  pw: { env: LOCKSTEP_RESOLVE_TEST_PASSWORD }\ndbSchemas:\n  s: { changelog: c.sql }\ndbInstances:\n  main: { schema: s, connector: pg, database: other }\n  docs: { schema: s, connector: m }\n";
        let config =
            Config::parse(std::path::Path::new("/etc/lockstep/lockstep.yaml"), text).unwrap();
        let DbTarget::Postgres {
            config: postgres,
            allow_superuser,
        } = target(&config, "main").unwrap()
        else {
            panic!("a PostgreSQL target")
        };
        assert_eq!(postgres.get_dbname(), Some("other"));
        assert_eq!(postgres.get_password(), Some(&b"pw-from-env"[..]));
        assert!(!allow_superuser);
        assert_eq!(
            config.mask.apply("pw-from-env"),
            crate::log::MASK,
            "the password is masked from now on"
        );
        assert!(
            matches!(target(&config, "docs").unwrap(), DbTarget::Mongo { database, .. } if database == "orders")
        );
        assert!(
            matches!(target(&config, "nope"), Err(Refusal::Configuration(m)) if m.contains("`nope` is not defined"))
        );
    }

    #[test]
    fn a_mysql_instance_names_its_database_and_gets_its_secret() {
        // SAFETY: set before it is read; no other test uses this variable.
        unsafe { std::env::set_var("LOCKSTEP_RESOLVE_MYSQL_PASSWORD", "mysql-pw") };
        let text = "connectors:\n  maria: { type: MySql, url: 'mysql://app@127.0.0.1:3306/app', passwordRef: pw }\n  bare: { type: MySql, url: 'mysql://app@127.0.0.1:3306' }\nsecrets:\n  pw: { env: LOCKSTEP_RESOLVE_MYSQL_PASSWORD }\ndbSchemas:\n  s: { changelog: c.sql }\ndbInstances:\n  main: { schema: s, connector: maria, database: other }\n  anywhere: { schema: s, connector: bare }\n";
        let config =
            Config::parse(std::path::Path::new("/etc/lockstep/lockstep.yaml"), text).unwrap();
        let DbTarget::Mysql {
            opts,
            allow_superuser,
        } = target(&config, "main").unwrap()
        else {
            panic!("a MySQL target")
        };
        assert_eq!(opts.db_name(), Some("other"));
        assert_eq!(opts.pass(), Some("mysql-pw"));
        assert!(!allow_superuser);
        assert!(
            matches!(target(&config, "anywhere"), Err(Refusal::Configuration(m)) if m.contains("say which MySQL database")),
            "a session without a database would reach every database the user may use"
        );
    }
}
