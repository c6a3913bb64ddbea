//! Interop with Liquibase 4.28 itself (npm `liquibase@4.28.1`, which bundles 4.28.0 and the
//! PostgreSQL driver; Java 17 runs it). Each tool applies the same changelog to a fresh database
//! and the results are compared; then each continues and rolls back what the other applied.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use support::db::TestDb;

/// The Liquibase CLI, installed into target/liquibase on first use.
fn liquibase() -> &'static Path {
    static CLI: OnceLock<PathBuf> = OnceLock::new();
    CLI.get_or_init(|| {
        let prefix = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/liquibase");
        let cli = prefix.join("node_modules/liquibase/dist/liquibase/liquibase");
        if !cli.exists() {
            let status = Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--prefix"])
                .arg(&prefix)
                .arg("liquibase@4.28.1")
                .status()
                .expect("npm is needed to install Liquibase for the interop tests");
            assert!(status.success(), "`npm install liquibase@4.28.1` failed");
        }
        cli
    })
}

fn database_name(db: &TestDb) -> &str {
    match db {
        TestDb::Postgres { name, .. } => name,
        TestDb::Sqlite { .. } => unreachable!("interop is tested on PostgreSQL"),
    }
}

struct Project {
    dir: tempfile::TempDir,
    changelog: String,
}

impl Project {
    fn new(db: &TestDb, changelog: &str) -> Self {
        Self::with_file(db, "db/changelog.sql", changelog)
    }

    /// A project whose root changelog is `path`.
    fn with_file(db: &TestDb, path: &str, changelog: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("db")).unwrap();
        std::fs::write(dir.path().join(path), changelog).unwrap();
        let config = format!(
            "connectors:\n{}dbSchemas:\n  app: {{ changelog: {path} }}\ndbInstances:\n  main: {{ schema: app, connector: db }}\n",
            db.connector("db")
        );
        std::fs::write(dir.path().join("lockstep.yaml"), config).unwrap();
        Project {
            dir,
            changelog: path.to_string(),
        }
    }

    fn write_changelog(&self, changelog: &str) {
        std::fs::write(self.dir.path().join(&self.changelog), changelog).unwrap();
    }

    /// Runs Liquibase from the project root, as a team would (so FILENAME is `db/changelog.sql`).
    fn liquibase(&self, db: &TestDb, args: &[&str]) -> String {
        let output = Command::new(liquibase())
            .arg(format!(
                "--url=jdbc:postgresql://127.0.0.1:5432/{}",
                database_name(db)
            ))
            .arg(format!("--username={}", db.role()))
            .args([
                &format!("--changelog-file={}", self.changelog),
                "--show-banner=false",
                "--log-level=SEVERE",
            ])
            .args(args)
            .current_dir(self.dir.path())
            .output()
            .expect("running Liquibase (needs Java)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "liquibase {args:?} failed:\n{text}"
        );
        text
    }

    fn lockstep(&self, args: &[&str]) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_lockstep"))
            .arg("db")
            .args(args)
            .args(["--instance", "main"])
            .args(["--config", "lockstep.yaml"])
            .current_dir(self.dir.path())
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "lockstep db {args:?} failed:\n{text}"
        );
        text
    }
}

/// DATABASECHANGELOG without the columns that differ by nature (dates, deployment id).
fn history(db: &TestDb) -> Vec<String> {
    use lockstep_changelog::db::Sql;
    let rows = db.session().query("SELECT ID, AUTHOR, FILENAME, CAST(ORDEREXECUTED AS TEXT), EXECTYPE, MD5SUM, DESCRIPTION, COMMENTS, TAG, LIQUIBASE, CONTEXTS, LABELS FROM DATABASECHANGELOG ORDER BY ORDEREXECUTED", &[]).unwrap();
    rows.rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|v| v.as_text().unwrap_or("NULL").to_string())
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect()
}

/// `pg_dump --schema-only` without comments and pg_dump's per-run random `\restrict` token.
fn schema(db: &TestDb) -> String {
    let output = Command::new("pg_dump")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "--schema-only",
            "--no-owner",
            database_name(db),
        ])
        .output()
        .expect("pg_dump");
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| {
            !l.starts_with("--")
                && !l.starts_with("\\restrict")
                && !l.starts_with("\\unrestrict")
                && !l.trim().is_empty()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const CHANGELOG: &str = "--liquibase formatted sql

--changeset alice:create-person labels:core,people context:prod
--comment: people we know
create table person (
    id int primary key,
    name varchar(100) not null
);
--rollback drop table person;

--changeset alice:add-email
-- a plain comment counts towards the checksum
alter table person add column email text;
--rollback alter table person drop column email;

--changeset bob:seed
insert into person (id, name) values (1, 'Ada'), (2, 'Grace');
--rollback delete from person where id in (1, 2);

--changeset bob:view splitStatements:false runOnChange:true
create or replace view person_names as select name from person;
--rollback drop view person_names;

--changeset carol:function endDelimiter:/
create function person_count() returns bigint as $$ select count(*) from person $$ language sql
/
--rollback drop function person_count();
";

#[test]
fn the_same_changelog_gives_the_same_history_and_schema_with_either_tool() {
    let (by_liquibase, by_lockstep) = (TestDb::postgres(), TestDb::postgres());
    Project::new(&by_liquibase, CHANGELOG).liquibase(&by_liquibase, &["update"]);
    Project::new(&by_lockstep, CHANGELOG).lockstep(&["update"]);
    let expected = history(&by_liquibase);
    assert_eq!(expected.len(), 5);
    assert_eq!(history(&by_lockstep), expected);
    assert_eq!(schema(&by_lockstep), schema(&by_liquibase));
}

#[test]
fn lockstep_continues_and_rolls_back_what_liquibase_applied() {
    let db = TestDb::postgres();
    let project = Project::new(&db, CHANGELOG);
    project.liquibase(&db, &["update-count", "--count=2"]);
    project.liquibase(&db, &["tag", "--tag=v1"]);
    assert!(
        project
            .lockstep(&["update"])
            .contains("3 changeset(s) applied to main")
    );
    assert!(project.lockstep(&["status"]).contains("main is up to date"));
    assert!(
        project
            .lockstep(&["rollback", "--tag", "v1"])
            .contains("3 changeset(s) rolled back on main")
    );
    assert_eq!(history(&db).len(), 2);
    let reference = TestDb::postgres();
    let reference_project = Project::new(&reference, CHANGELOG);
    reference_project.liquibase(&reference, &["update-count", "--count=2"]);
    assert_eq!(
        schema(&db),
        schema(&reference),
        "back to the schema of the first two changesets"
    );
}

#[test]
fn liquibase_accepts_and_rolls_back_what_lockstep_applied() {
    let db = TestDb::postgres();
    let project = Project::new(&db, CHANGELOG);
    project.lockstep(&["update"]);
    project.lockstep(&["tag", "v1"]);
    let status = project.liquibase(&db, &["status"]);
    assert!(
        status.contains("is up to date"),
        "Liquibase validated Lockstep's checksums and found nothing to do:\n{status}"
    );
    project.liquibase(&db, &["rollback-count", "--count=2"]);
    assert_eq!(history(&db).len(), 3);
    assert!(
        project
            .lockstep(&["update"])
            .contains("2 changeset(s) applied to main")
    );

    // A runOnChange changeset edited later is re-run by Lockstep, and Liquibase agrees.
    let edited = CHANGELOG.replace(
        "create or replace view person_names as select name from person;",
        "create or replace view person_names as select name, email from person;",
    );
    project.write_changelog(&edited);
    assert!(
        project
            .lockstep(&["update"])
            .contains("1 changeset(s) applied to main")
    );
    assert!(
        history(&db)[4].starts_with("view|bob|db/changelog.sql|6|RERAN|"),
        "{:?}",
        history(&db)
    );
    let status = project.liquibase(&db, &["status"]);
    assert!(
        status.contains("is up to date"),
        "Liquibase accepts the re-run's checksum:\n{status}"
    );
}

const YAML_CHANGELOG: &str = "databaseChangeLog:
  - changeSet:
      id: create-person
      author: alice
      changes:
        - createTable:
            tableName: person
            columns:
              - column:
                  name: id
                  type: int
                  constraints:
                    primaryKey: true
                    nullable: false
              - column:
                  name: name
                  type: varchar(50)
  - changeSet:
      id: add-columns
      author: alice
      changes:
        - addColumn:
            tableName: person
            columns:
              - column:
                  name: email
                  type: varchar(200)
              - column:
                  name: active
                  type: boolean
                  defaultValueBoolean: true
  - changeSet:
      id: index-email
      author: bob
      changes:
        - createIndex:
            tableName: person
            indexName: ix_person_email
            unique: true
            columns:
              - column:
                  name: email
  - changeSet:
      id: seed
      author: bob
      changes:
        - sql: insert into person (id, name, email) values (1, 'Ada', 'ada@example.com')
      rollback: delete from person where id = 1
  - changeSet:
      id: tag-v1
      author: bob
      changes:
        - tagDatabase:
            tag: v1
  - changeSet:
      id: rename
      author: carol
      changes:
        - renameColumn:
            tableName: person
            oldColumnName: name
            newColumnName: full_name
            columnDataType: varchar(50)
        - addNotNullConstraint:
            tableName: person
            columnName: email
            columnDataType: varchar(200)
  - changeSet:
      id: view
      author: carol
      changes:
        - createView:
            viewName: active_people
            selectQuery: select id, full_name from person where active
";

#[test]
fn a_yaml_changelog_of_structured_changes_matches_liquibase_forwards_and_backwards() {
    let (by_liquibase, by_lockstep) = (TestDb::postgres(), TestDb::postgres());
    let liquibase_project = Project::with_file(&by_liquibase, "db/changelog.yaml", YAML_CHANGELOG);
    let lockstep_project = Project::with_file(&by_lockstep, "db/changelog.yaml", YAML_CHANGELOG);
    liquibase_project.liquibase(&by_liquibase, &["update"]);
    lockstep_project.lockstep(&["update"]);
    let expected = history(&by_liquibase);
    assert_eq!(expected.len(), 7);
    assert_eq!(
        history(&by_lockstep),
        expected,
        "checksums, descriptions and tags as Liquibase writes them"
    );
    assert_eq!(schema(&by_lockstep), schema(&by_liquibase));

    // Rolling back to the tag undoes the later changesets and the tagDatabase changeset itself.
    liquibase_project.liquibase(&by_liquibase, &["rollback", "--tag=v1"]);
    assert!(
        lockstep_project
            .lockstep(&["rollback", "--tag", "v1"])
            .contains("3 changeset(s) rolled back")
    );
    assert_eq!(history(&by_lockstep), history(&by_liquibase));
    assert_eq!(schema(&by_lockstep), schema(&by_liquibase));

    // Automatic inverses all the way back.
    liquibase_project.liquibase(&by_liquibase, &["rollback-count", "--count=4"]);
    lockstep_project.lockstep(&["rollback", "--count", "4"]);
    assert!(history(&by_lockstep).is_empty());
    assert_eq!(schema(&by_lockstep), schema(&by_liquibase));
}

const XML_CHANGELOG: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<databaseChangeLog
    xmlns="http://www.liquibase.org/xml/ns/dbchangelog"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xsi:schemaLocation="http://www.liquibase.org/xml/ns/dbchangelog http://www.liquibase.org/xml/ns/dbchangelog/dbchangelog-4.28.xsd">
    <changeSet id="create-person" author="alice" context="prod" labels="core">
        <comment>people we know</comment>
        <createTable tableName="person">
            <column name="id" type="int">
                <constraints primaryKey="true" nullable="false"/>
            </column>
            <column name="name" type="varchar(50)"/>
        </createTable>
    </changeSet>
    <changeSet id="seed" author="bob">
        <sql>insert into person (id, name) values (1, 'Ada')</sql>
        <rollback>delete from person where id = 1</rollback>
    </changeSet>
    <changeSet id="index" author="bob">
        <createIndex tableName="person" indexName="ix_person_name">
            <column name="name"/>
        </createIndex>
    </changeSet>
</databaseChangeLog>
"#;

#[test]
fn an_xml_changelog_matches_liquibase() {
    let (by_liquibase, by_lockstep) = (TestDb::postgres(), TestDb::postgres());
    Project::with_file(&by_liquibase, "db/changelog.xml", XML_CHANGELOG)
        .liquibase(&by_liquibase, &["update"]);
    let lockstep_project = Project::with_file(&by_lockstep, "db/changelog.xml", XML_CHANGELOG);
    lockstep_project.lockstep(&["update"]);
    assert_eq!(history(&by_lockstep), history(&by_liquibase));
    assert_eq!(schema(&by_lockstep), schema(&by_liquibase));
    lockstep_project.lockstep(&["rollback", "--count", "3"]);
    assert!(history(&by_lockstep).is_empty());
}
