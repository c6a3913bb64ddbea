//! Interop with Liquibase 4.28 itself (npm `liquibase@4.28.1`, which bundles 4.28.0 and the
//! PostgreSQL, MariaDB and SQLite drivers; Java 17 runs it). Each tool applies the same changelog to a fresh database
//! and the results are compared; then each continues and rolls back what the other applied.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use support::db::{TestDb, spawn_lockstep_db, wait_until};

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
        // The bundled SQLite driver logs through SLF4J, which the package does not ship.
        let slf4j = cli.with_file_name("lib").join("slf4j-api.jar");
        if !slf4j.exists() {
            let debian = Path::new("/usr/share/java/slf4j-api.jar");
            if debian.exists() {
                std::fs::copy(debian, &slf4j).expect("copying slf4j-api.jar into Liquibase's lib/");
            }
        }
        cli
    })
}

/// The JDBC URL (and user) Liquibase reaches `db` with.
fn jdbc(db: &TestDb) -> Vec<String> {
    match db {
        TestDb::Postgres { name, .. } => vec![
            format!("--url=jdbc:postgresql://127.0.0.1:5432/{name}"),
            format!("--username={}", db.role()),
        ],
        TestDb::Mariadb { name, .. } => vec![
            format!("--url=jdbc:mariadb://127.0.0.1:3306/{name}"),
            format!("--username={}", db.role()),
        ],
        TestDb::Sqlite { path, .. } => {
            assert!(
                liquibase()
                    .with_file_name("lib")
                    .join("slf4j-api.jar")
                    .exists(),
                "Liquibase's SQLite driver needs slf4j-api.jar: install Debian's libslf4j-java"
            );
            vec![format!("--url=jdbc:sqlite:{}", path.display())]
        }
    }
}

fn database_name(db: &TestDb) -> &str {
    match db {
        TestDb::Postgres { name, .. } | TestDb::Mariadb { name, .. } => name,
        TestDb::Sqlite { .. } => unreachable!("a SQLite database is a file, not a name"),
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
        Self::with_instance(db, path, changelog, "")
    }

    /// A project whose instance has `instance` among its settings (`context: prod`).
    fn with_instance(db: &TestDb, path: &str, changelog: &str, instance: &str) -> Self {
        Self::with_files(db, &[(path, changelog)], instance)
    }

    /// A project of `files` (path, content), whose root changelog is the first.
    fn with_files(db: &TestDb, files: &[(&str, &str)], instance: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (file, content) in files {
            let file = dir.path().join(file);
            std::fs::create_dir_all(file.parent().unwrap()).unwrap();
            std::fs::write(file, content).unwrap();
        }
        let path = files[0].0;
        let config = format!(
            "connectors:\n{}dbSchemas:\n  app: {{ changelog: {path} }}\ndbInstances:\n  main: {{ schema: app, connector: db{instance} }}\n",
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
        let (ok, text) = self.try_liquibase(db, args);
        assert!(ok, "liquibase {args:?} failed:\n{text}");
        text
    }

    /// [`Self::liquibase`]: whether it succeeded, and what it printed.
    fn try_liquibase(&self, db: &TestDb, args: &[&str]) -> (bool, String) {
        let output = Command::new(liquibase())
            .args(jdbc(db))
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
        (output.status.success(), text)
    }

    fn lockstep(&self, args: &[&str]) -> String {
        let (ok, text) = self.try_lockstep(args);
        assert!(ok, "lockstep db {args:?} failed:\n{text}");
        text
    }

    /// `lockstep db ARGS`, which must fail: what it printed.
    fn lockstep_fails(&self, args: &[&str]) -> String {
        let (ok, text) = self.try_lockstep(args);
        assert!(!ok, "lockstep db {args:?} succeeded:\n{text}");
        text
    }

    /// `lockstep db ARGS`: whether it succeeded, and what it printed.
    fn try_lockstep(&self, args: &[&str]) -> (bool, String) {
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
        (output.status.success(), text)
    }
}

/// DATABASECHANGELOG without the columns that differ by nature (dates, deployment id).
fn history(db: &TestDb) -> Vec<String> {
    use lockstep_changelog::db::Sql;
    let text = if matches!(db, TestDb::Mariadb { .. }) {
        "CHAR"
    } else {
        "TEXT"
    };
    let rows = db.session().query(&format!("SELECT ID, AUTHOR, FILENAME, CAST(ORDEREXECUTED AS {text}), EXECTYPE, MD5SUM, DESCRIPTION, COMMENTS, TAG, LIQUIBASE, CONTEXTS, LABELS FROM DATABASECHANGELOG ORDER BY ORDEREXECUTED"), &[]).unwrap();
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

/// `mariadb-dump ARGS` of the database, its name (which differs between the two databases
/// compared, and appears in view definers and bodies) replaced by `DB`, without the session
/// settings it saves and restores (views are `/*!50001 …*/` and stay).
fn mariadb_dump(name: &str, args: &[&str]) -> String {
    let output = Command::new("mariadb-dump")
        .args([
            "-h",
            "127.0.0.1",
            "-u",
            "root",
            "--skip-comments",
            "--skip-dump-date",
        ])
        .args(args)
        .arg(name)
        .output()
        .expect("mariadb-dump");
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| {
            !l.starts_with("/*!40")
                && !l.starts_with("/*M!")
                && !l.starts_with("SET ")
                && !l.trim().is_empty()
        })
        .map(|l| l.replace(name, "DB"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The schema as the database reports it: `pg_dump --schema-only` (without comments and its
/// per-run random `\restrict` token), `mariadb-dump --no-data`, or SQLite's own text of each
/// table and index.
fn schema(db: &TestDb) -> String {
    use lockstep_changelog::db::Sql;
    match db {
        TestDb::Sqlite { .. } => {
            let rows = db.session().query("SELECT type, name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY type, name", &[]).unwrap();
            return format!("{:?}", rows.rows);
        }
        TestDb::Mariadb { name, .. } => return mariadb_dump(name, &["--no-data"]),
        TestDb::Postgres { .. } => {}
    }
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

/// The rows of the user's tables (not the tracking tables), as `pg_dump --data-only` or
/// `mariadb-dump --no-create-info` gives them, or for SQLite each table's rows in rowid order.
fn data(db: &TestDb) -> String {
    let name = match db {
        TestDb::Postgres { name, .. } => name,
        TestDb::Mariadb { name, .. } => {
            let ignored = ["DATABASECHANGELOG", "DATABASECHANGELOGLOCK"]
                .map(|table| format!("--ignore-table={name}.{table}"));
            let args = ["--no-create-info", "--skip-extended-insert"];
            return mariadb_dump(
                name,
                &[&args[..], &ignored.each_ref().map(String::as_str)].concat(),
            );
        }
        TestDb::Sqlite { .. } => {
            use lockstep_changelog::db::Sql;
            let mut session = db.session();
            let tables = session.query("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name NOT LIKE 'DATABASECHANGELOG%' ORDER BY name", &[]).unwrap();
            return tables
                .rows
                .iter()
                .flat_map(|table| {
                    let table = table[0].as_text().unwrap().to_string();
                    let rows = session
                        .query(&format!("SELECT * FROM \"{table}\" ORDER BY rowid"), &[])
                        .unwrap();
                    rows.rows
                        .into_iter()
                        .map(move |row| format!("{table}: {row:?}"))
                })
                .collect::<Vec<_>>()
                .join("\n");
        }
    };
    let output = Command::new("pg_dump")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "--data-only",
            "--inserts",
        ])
        .args(["--exclude-table=databasechangelog*", name])
        .output()
        .expect("pg_dump");
    assert!(output.status.success());
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|l| l.starts_with("INSERT") || l.starts_with("SELECT pg_catalog.setval"))
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

/// Applies `changelog` with Liquibase (with `liquibase_args`) and with Lockstep (its instance
/// with `instance`) to fresh databases, and asserts the same DATABASECHANGELOG and schema; then
/// each tool finds the other's database up to date. Returns Lockstep's history.
fn same_as_liquibase(
    path: &str,
    changelog: &str,
    liquibase_args: &[&str],
    instance: &str,
) -> Vec<String> {
    same_as_liquibase_for_files(&[(path, changelog)], liquibase_args, instance)
}

/// [`same_as_liquibase`] for a changelog of several files, the first the root.
fn same_as_liquibase_for_files(
    files: &[(&str, &str)],
    liquibase_args: &[&str],
    instance: &str,
) -> Vec<String> {
    same_as_liquibase_on(TestDb::postgres, files, liquibase_args, instance)
}

/// [`same_as_liquibase_for_files`] on databases that `fresh` makes.
fn same_as_liquibase_on(
    fresh: fn() -> TestDb,
    files: &[(&str, &str)],
    liquibase_args: &[&str],
    instance: &str,
) -> Vec<String> {
    let (by_liquibase, by_lockstep) = (fresh(), fresh());
    let theirs = Project::with_files(&by_liquibase, files, instance);
    theirs.liquibase(&by_liquibase, &[&["update"], liquibase_args].concat());
    let ours = Project::with_files(&by_lockstep, files, instance);
    ours.lockstep(&["update"]);
    let expected = history(&by_liquibase);
    assert_eq!(history(&by_lockstep), expected);
    assert_eq!(schema(&by_lockstep), schema(&by_liquibase));
    assert_eq!(data(&by_lockstep), data(&by_liquibase));
    let status = ours.liquibase(&by_lockstep, &[&["status"], liquibase_args].concat());
    assert!(
        status.contains("is up to date"),
        "Liquibase on Lockstep's database:\n{status}"
    );
    let status = theirs.lockstep(&["status"]);
    assert!(
        status.contains("main is up to date"),
        "Lockstep on Liquibase's database:\n{status}"
    );
    expected
}

/// Lockstep applies `files` to one fresh database and Liquibase to another; then each tool rolls
/// back `count` changesets of what the other applied, with the automatic inverses, and the
/// schemas and histories must end equal.
fn each_rolls_back_what_the_other_applied(
    fresh: fn() -> TestDb,
    files: &[(&str, &str)],
    count: usize,
) -> Vec<String> {
    let (by_liquibase, by_lockstep) = (fresh(), fresh());
    let theirs = Project::with_files(&by_liquibase, files, "");
    let ours = Project::with_files(&by_lockstep, files, "");
    theirs.lockstep(&["update"]);
    ours.liquibase(&by_lockstep, &["update"]);
    theirs.liquibase(
        &by_liquibase,
        &["rollback-count", &format!("--count={count}")],
    );
    ours.lockstep(&["rollback", "--count", &count.to_string()]);
    assert_eq!(schema(&by_lockstep), schema(&by_liquibase));
    assert_eq!(data(&by_lockstep), data(&by_liquibase));
    let left = history(&by_lockstep);
    assert_eq!(left, history(&by_liquibase));
    left
}

#[test]
fn the_contexts_column_holds_the_changesets_own_expression_not_the_runs_contexts() {
    let changelog = "--liquibase formatted sql

--changeset alice:prod-only context:prod
create table audit (id int);

--changeset alice:everywhere
create table person (id int);
";
    let history = same_as_liquibase(
        "db/changelog.sql",
        changelog,
        &["--contexts=prod"],
        ", context: prod",
    );
    assert!(history[0].ends_with("|prod|NULL"), "{history:?}");
    assert!(history[1].ends_with("|NULL|NULL"), "{history:?}");
}

#[test]
fn a_word_end_delimiter_splits_only_at_the_whole_word_in_any_case() {
    let changelog = "--liquibase formatted sql

--changeset alice:goods endDelimiter:GO
create table GOODS (id int)
go
insert into GOODS values (1)
GO
--rollback drop table GOODS;
";
    same_as_liquibase("db/changelog.sql", changelog, &[], "");
}

#[test]
fn an_xml_root_logical_file_path_is_every_changesets_filename() {
    let changelog = r#"<?xml version="1.0" encoding="UTF-8"?>
<databaseChangeLog xmlns="http://www.liquibase.org/xml/ns/dbchangelog"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
    xsi:schemaLocation="http://www.liquibase.org/xml/ns/dbchangelog http://www.liquibase.org/xml/ns/dbchangelog/dbchangelog-4.28.xsd"
    logicalFilePath="shared/app-changelog.xml">
    <changeSet id="person" author="alice">
        <createTable tableName="person">
            <column name="id" type="int"/>
        </createTable>
    </changeSet>
</databaseChangeLog>
"#;
    let history = same_as_liquibase("db/changelog.xml", changelog, &[], "");
    assert!(
        history[0].starts_with("person|alice|shared/app-changelog.xml|"),
        "{history:?}"
    );
}

#[test]
fn an_include_that_may_be_missing_is_skipped_as_liquibase_skips_it() {
    let changelog = "databaseChangeLog:
  - include: { file: db/optional.yaml, errorIfMissing: false }
  - changeSet:
      id: person
      author: alice
      changes:
        - createTable: { tableName: person, columns: [{ column: { name: id, type: int } }] }
";
    let history = same_as_liquibase("db/changelog.yaml", changelog, &[], "");
    assert_eq!(history.len(), 1, "{history:?}");
}

#[test]
fn a_parents_properties_are_seen_in_the_files_it_includes() {
    let master = "databaseChangeLog:
  - property: { name: table, value: people }
  - property: { name: column_type, value: varchar(40) }
  - include: { file: parts/people.sql, relativeToChangelogFile: true }
  - include: { file: parts/later.yaml, relativeToChangelogFile: true }
";
    let people = "--liquibase formatted sql
--property name:suffix value:_archive
--changeset alice:people
create table ${table} (id int, name ${column_type});
--rollback drop table ${table};
";
    let later = "databaseChangeLog:
  - changeSet:
      id: archive
      author: alice
      changes:
        - createTable: { tableName: '${table}${suffix}', columns: [{ column: { name: id, type: int } }] }
";
    let history = same_as_liquibase_for_files(
        &[
            ("db/master.yaml", master),
            ("db/parts/people.sql", people),
            ("db/parts/later.yaml", later),
        ],
        &[],
        "",
    );
    assert!(
        history[1].contains("createTable tableName=people_archive"),
        "a global property of one include is seen by the next: {history:?}"
    );
}

#[test]
fn a_context_scoped_property_counts_only_in_its_context() {
    let changelog = "databaseChangeLog:
  - property: { name: rows_table, value: test_rows, context: test }
  - property: { name: rows_table, value: prod_rows, context: prod }
  - property: { name: rows_table, value: any_rows }
  - changeSet:
      id: rows
      author: alice
      changes:
        - createTable: { tableName: '${rows_table}', columns: [{ column: { name: id, type: int } }] }
";
    let history = same_as_liquibase(
        "db/changelog.yaml",
        changelog,
        &["--contexts=prod"],
        ", context: prod",
    );
    assert!(history[0].contains("tableName=prod_rows"), "{history:?}");
}

#[test]
fn an_undefined_property_refuses_the_update_before_the_first_write() {
    let db = TestDb::postgres();
    let project = Project::new(
        &db,
        "--liquibase formatted sql

--changeset alice:person
create table person (id int);

--changeset alice:typo
alter table person add column ${colum_name} text;
",
    );
    let text = project.lockstep_fails(&["update"]);
    assert!(
        text.contains("db/changelog.sql:6: this changeset uses ${colum_name} but no property of that name is defined"),
        "{text}"
    );
    assert!(
        !schema(&db).contains("person"),
        "nothing was applied: {}",
        schema(&db)
    );
}

#[test]
fn schemas_inline_constraints_and_identity_columns_land_where_liquibase_puts_them() {
    let changelog = "databaseChangeLog:
  - changeSet:
      id: schema
      author: alice
      changes:
        - sql: create schema app
      rollback: drop schema app
  - changeSet:
      id: company
      author: alice
      changes:
        - createTable:
            tableName: company
            schemaName: app
            columns:
              - column: { name: id, type: int, autoIncrement: true, constraints: { primaryKey: true, primaryKeyName: pk_company } }
              - column: { name: code, type: varchar(10), constraints: { unique: true, uniqueConstraintName: uq_company_code, nullable: false } }
  - changeSet:
      id: employee
      author: alice
      changes:
        - createTable:
            tableName: employee
            schemaName: app
            columns:
              - column: { name: id, type: bigint, autoIncrement: true, startWith: 100, incrementBy: 10, constraints: { primaryKey: true } }
              - column: { name: company_id, type: int, constraints: { foreignKeyName: fk_employee_company, references: app.company(id), deleteCascade: true } }
              - column: { name: boss_id, type: bigint, constraints: { foreignKeyName: fk_employee_boss, referencedTableSchemaName: app, referencedTableName: employee, referencedColumnNames: id } }
        - addColumn:
            tableName: employee
            schemaName: app
            columns:
              - column: { name: mentor_id, type: bigint, constraints: { foreignKeyName: fk_employee_mentor, references: app.employee(id) } }
              - column: { name: badge, type: int, autoIncrement: true }
              - column: { name: nickname, type: varchar(20) }
        - createIndex: { schemaName: app, tableName: employee, indexName: ix_employee_company, columns: [{ column: { name: company_id } }] }
        - createView: { schemaName: app, viewName: employee_names, selectQuery: 'select id, nickname from app.employee' }
  - changeSet:
      id: nicknames
      author: alice
      changes:
        - sql: insert into app.employee (nickname) values (null)
        - addNotNullConstraint: { schemaName: app, tableName: employee, columnName: nickname, columnDataType: varchar(20), defaultNullValue: none }
  - changeSet:
      id: renames
      author: alice
      changes:
        - renameColumn: { schemaName: app, tableName: employee, oldColumnName: badge, newColumnName: badge_number, columnDataType: int }
        - renameTable: { schemaName: app, oldTableName: company, newTableName: employer }
";
    let history = same_as_liquibase("db/changelog.yaml", changelog, &[], "");
    assert_eq!(history.len(), 5, "{history:?}");
}

#[test]
fn a_constraint_attribute_neither_tool_honours_is_refused_before_the_first_write() {
    let db = TestDb::postgres();
    let project = Project::with_file(
        &db,
        "db/changelog.yaml",
        "databaseChangeLog:
  - changeSet:
      id: person
      author: alice
      changes:
        - createTable: { tableName: person, columns: [{ column: { name: id, type: int } }] }
  - changeSet:
      id: sized
      author: alice
      changes:
        - createTable:
            tableName: box
            remarks: what we ship in
            columns:
              - column: { name: size, type: int, constraints: { checkConstraint: size > 0 } }
",
    );
    let text = project.lockstep_fails(&["update"]);
    assert!(
        text.contains(
            "db/changelog.yaml:12: `remarks` on `createTable` is not supported by Lockstep"
        ),
        "{text}"
    );
    assert!(
        text.contains("`checkConstraint` on a column's constraints is not supported by Lockstep")
            && text.contains("creates no CHECK constraint"),
        "{text}"
    );
    assert!(!schema(&db).contains("person"), "{}", schema(&db));
}

#[test]
fn update_sql_ends_each_statement_as_liquibase_prints_it() {
    let changelog = "--liquibase formatted sql

--changeset alice:whole splitStatements:false
create table t1 (id int);
insert into t1 values (1);

--changeset alice:slashes endDelimiter:/
create function f() returns int as $$ select 1 $$ language sql
/
create table t2 (id int)
/

--changeset alice:plain
create table t3 (id int);
create table t4 (id int)
";
    // The changelog's own statements, without comments and the tracking tables' statements.
    let statements = |printed: &str| -> Vec<String> {
        printed
            .lines()
            .filter(|l| l.ends_with(';') || l.ends_with('/'))
            .filter(|l| !l.starts_with("--") && !l.starts_with("SET SEARCH_PATH"))
            .filter(|l| !l.to_uppercase().contains("DATABASECHANGELOG"))
            .map(String::from)
            .collect()
    };
    let db = TestDb::postgres();
    let project = Project::new(&db, changelog);
    let theirs = statements(&project.liquibase(&db, &["update-sql"]));
    assert_eq!(theirs.len(), 6, "{theirs:?}");
    assert_eq!(statements(&project.lockstep(&["update-sql"])), theirs);
}

#[test]
fn a_killed_lockstep_never_leaves_liquibase_waiting_for_the_lock() {
    use lockstep_changelog::db::{Sql, Value};
    let db = TestDb::postgres();
    let project = Project::new(
        &db,
        "--liquibase formatted sql

--changeset alice:slow
select pg_sleep(4);

--changeset alice:person
create table person (id int);
",
    );
    let mut runner = spawn_lockstep_db(project.dir.path(), &["update"]);
    // The lock is taken once a session of the database holds the lock row's transaction open.
    let mut session = db.session();
    wait_until("Lockstep never took the lock", || {
        session
            .query(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = $1 AND state = 'idle in transaction'",
                &[Value::from(database_name(&db))],
            )
            .unwrap()
            .rows[0][0]
            .as_integer()
            .unwrap()
            > 0
    });
    runner.kill().unwrap();
    runner.wait().unwrap();
    // Liquibase waits at most a minute for a lock; a row left locked would fail it.
    project.liquibase(&db, &["--changelog-lock-wait-time-in-minutes=1", "update"]);
    assert_eq!(history(&db).len(), 2, "{:?}", history(&db));
    let lock = session
        .query(
            "SELECT CAST(LOCKED AS TEXT) FROM DATABASECHANGELOGLOCK",
            &[],
        )
        .unwrap();
    assert_eq!(lock.rows, [[Value::from("false")]]);
}

#[test]
fn a_lockstep_killed_between_ddl_and_its_history_row_on_mariadb_blocks_no_one_and_is_reported() {
    use lockstep_changelog::db::{Sql, Value};
    let db = TestDb::mariadb();
    let changelog = "--liquibase formatted sql

--changeset alice:half
create table half (id int);
select sleep(3);

--changeset alice:person
create table person (id int);
";
    let project = Project::new(&db, changelog);
    let mut runner = spawn_lockstep_db(project.dir.path(), &["update"]);
    // MySQL commits `create table` by itself: once the table is there, the changeset is half-done.
    let mut session = db.session();
    let table_exists = "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = 'half'";
    wait_until("Lockstep never created the table", || {
        session.query(table_exists, &[]).unwrap().rows[0][0].as_integer() == Some(1)
    });
    runner.kill().unwrap();
    runner.wait().unwrap();

    // Liquibase is not kept waiting: the lock row was never committed.
    project.write_changelog(
        "--liquibase formatted sql\n\n--changeset alice:person\ncreate table person (id int);\n",
    );
    project.liquibase(&db, &["--changelog-lock-wait-time-in-minutes=1", "update"]);
    assert_eq!(history(&db).len(), 1, "{:?}", history(&db));

    // Lockstep does not run the half-done changeset again by itself, and says which it is.
    project.write_changelog(changelog);
    let (ok, text) = project.try_lockstep(&["update"]);
    assert!(!ok, "{text}");
    assert!(
        text.contains("changeset db/changelog.sql::half::alice may be half-applied")
            && text.contains("release-locks"),
        "{text}"
    );
    let tables = session.query("SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name IN ('half', 'person')", &[]).unwrap();
    assert_eq!(tables.rows, [[Value::Integer(2)]]);
    // Once someone has looked, release-locks clears the mark and the changeset is pending again.
    project.lockstep(&["release-locks"]);
    let status = project.lockstep(&["status"]);
    assert!(status.contains("half"), "{status}");
    let lock = session
        .query("SELECT ID, LOCKED FROM DATABASECHANGELOGLOCK", &[])
        .unwrap();
    assert_eq!(lock.rows, [[Value::Integer(1), Value::Integer(0)]]);
}

#[test]
fn sqlite_tracking_tables_and_keys_are_created_as_liquibase_creates_them() {
    let changelog = "databaseChangeLog:
  - changeSet:
      id: parent
      author: alice
      changes:
        - createTable:
            tableName: parent
            columns:
              - column: { name: id, type: int, constraints: { primaryKey: true } }
              - column: { name: active, type: boolean, defaultValueBoolean: true }
              - column: { name: archived, type: boolean, defaultValueBoolean: false }
  - changeSet:
      id: child
      author: alice
      changes:
        - createTable:
            tableName: child
            columns:
              - column: { name: id, type: int, autoIncrement: true, constraints: { primaryKey: true } }
              - column: { name: parent_id, type: int, constraints: { nullable: false, foreignKeyName: fk_child_parent, references: parent(id), deleteCascade: true } }
              - column: { name: code, type: varchar(10), constraints: { unique: true, uniqueConstraintName: uq_child_code } }
  - changeSet:
      id: pair
      author: alice
      changes:
        - createTable:
            tableName: pair
            columns:
              - column: { name: a, type: int, constraints: { primaryKey: true, primaryKeyName: pk_pair } }
              - column: { name: b, type: int, constraints: { primaryKey: true } }
";
    let history =
        same_as_liquibase_on(TestDb::sqlite, &[("db/changelog.yaml", changelog)], &[], "");
    assert_eq!(history.len(), 3, "{history:?}");
}

const CONSTRAINTS_SEQUENCES_AND_DATA: &str = "databaseChangeLog:
  - changeSet:
      id: base
      author: alice
      changes:
        - createTable: { tableName: dept, columns: [{ column: { name: id, type: int } }, { column: { name: code, type: varchar(10) } }, { column: { name: title, type: varchar(50) } }] }
        - createTable: { tableName: emp, columns: [{ column: { name: id, type: int } }, { column: { name: dept_id, type: int } }, { column: { name: name, type: varchar(50) } }, { column: { name: level, type: int } }] }
  - changeSet:
      id: keys
      author: alice
      changes:
        - addPrimaryKey: { tableName: dept, columnNames: id, constraintName: pk_dept }
        - addPrimaryKey: { tableName: emp, columnNames: id, constraintName: pk_emp }
        - addUniqueConstraint: { tableName: dept, columnNames: code, constraintName: uq_dept_code }
        - addForeignKeyConstraint: { baseTableName: emp, baseColumnNames: dept_id, constraintName: fk_emp_dept, referencedTableName: dept, referencedColumnNames: id, onDelete: CASCADE }
  - changeSet:
      id: defaults
      author: alice
      changes:
        - addDefaultValue: { tableName: emp, columnName: level, columnDataType: int, defaultValueNumeric: 1 }
        - addDefaultValue: { tableName: dept, columnName: title, defaultValue: none }
  - changeSet:
      id: sequences
      author: alice
      changes:
        - createSequence: { sequenceName: emp_seq, startValue: 100, incrementBy: 5 }
        - renameSequence: { oldSequenceName: emp_seq, newSequenceName: staff_seq }
  - changeSet:
      id: views
      author: alice
      changes:
        - createView: { viewName: v_emp, selectQuery: 'select id, dept_id from emp' }
        - renameView: { oldViewName: v_emp, newViewName: v_staff }
  - changeSet:
      id: data
      author: alice
      changes:
        - insert: { tableName: dept, columns: [{ column: { name: id, valueNumeric: 1 } }, { column: { name: code, value: R&D } }, { column: { name: title, value: \"it's research\" } }] }
        - insert: { tableName: emp, columns: [{ column: { name: id, valueNumeric: 7 } }, { column: { name: dept_id, valueNumeric: 1 } }, { column: { name: name, value: Ada } }] }
        - update: { tableName: emp, columns: [{ column: { name: level, valueNumeric: 3 } }], where: \"name = 'Ada'\" }
        - delete: { tableName: emp, where: id = 99 }
      rollback:
        - delete: { tableName: emp }
        - delete: { tableName: dept }
  - changeSet:
      id: reshape
      author: alice
      changes:
        - modifyDataType: { tableName: emp, columnName: name, newDataType: varchar(100) }
        - alterSequence: { sequenceName: staff_seq, incrementBy: 10 }
        - setTableRemarks: { tableName: emp, remarks: people who work here }
        - setColumnRemarks: { tableName: emp, columnName: name, remarks: full name }
      rollback: empty
  - changeSet:
      id: drops
      author: alice
      changes:
        - dropDefaultValue: { tableName: dept, columnName: title }
        - dropForeignKeyConstraint: { baseTableName: emp, constraintName: fk_emp_dept }
        - dropUniqueConstraint: { tableName: dept, constraintName: uq_dept_code }
        - dropPrimaryKey: { tableName: emp }
        - dropSequence: { sequenceName: staff_seq }
      rollback: empty
";

#[test]
fn constraint_default_sequence_view_and_data_changes_match_liquibase_forwards_and_backwards() {
    let files = [("db/changelog.yaml", CONSTRAINTS_SEQUENCES_AND_DATA)];
    let applied = same_as_liquibase_for_files(&files, &[], "");
    assert_eq!(applied.len(), 8, "{applied:?}");
    // Up to the data, everything has an inverse: each tool rolls back what the other applied,
    // with the automatic inverses, and the schemas stay equal.
    let (invertible, _) = CONSTRAINTS_SEQUENCES_AND_DATA
        .split_once("  - changeSet:\n      id: reshape")
        .unwrap();
    let files = [("db/changelog.yaml", invertible)];
    assert!(each_rolls_back_what_the_other_applied(TestDb::postgres, &files, 6).is_empty());
}

/// The change types Lockstep writes for MySQL and MariaDB, each as Liquibase writes it there.
const MARIADB_CHANGES: &str = "databaseChangeLog:
  - changeSet:
      id: tables
      author: alice
      changes:
        - createTable:
            tableName: person
            columns:
              - column: { name: id, type: int, autoIncrement: true, constraints: { primaryKey: true, nullable: false } }
              - column: { name: name, type: varchar(255), constraints: { nullable: false, unique: true, uniqueConstraintName: uq_person_name } }
              - column: { name: active, type: boolean, defaultValueBoolean: true }
              - column: { name: born, type: datetime }
              - column: { name: seen, type: timestamp }
              - column: { name: bio, type: text }
              - column: { name: notes, type: clob }
              - column: { name: price, type: \"numeric(5,2)\", defaultValueNumeric: 1.5 }
              - column: { name: code, type: uuid }
              - column: { name: big, type: bigint }
              - column: { name: nick, type: varchar(20), defaultValue: \"x'y\" }
        - createTable:
            tableName: address
            columns:
              - column: { name: id, type: int, constraints: { primaryKey: true, primaryKeyName: pk_address } }
              - column: { name: person_id, type: int, constraints: { foreignKeyName: fk_address_person, references: person(id), deleteCascade: true } }
              - column: { name: city, type: varchar(50) }
  - changeSet:
      id: columns
      author: alice
      changes:
        - addColumn: { tableName: person, columns: [ { column: { name: email, type: varchar(100) } } ] }
        - createIndex: { tableName: person, indexName: ix_person_email, columns: [ { column: { name: email } } ] }
        - renameColumn: { tableName: person, oldColumnName: nick, newColumnName: nickname, columnDataType: varchar(20) }
        - addNotNullConstraint: { tableName: person, columnName: email, columnDataType: varchar(100), defaultNullValue: none }
  - changeSet:
      id: constraints
      author: bob
      changes:
        - addUniqueConstraint: { tableName: person, columnNames: email, constraintName: uq_person_email }
        - addForeignKeyConstraint: { baseTableName: address, baseColumnNames: person_id, constraintName: fk_address_owner, referencedTableName: person, referencedColumnNames: id, onDelete: CASCADE }
        - addDefaultValue: { tableName: address, columnName: city, defaultValue: Paris }
        - createView: { viewName: v_person, selectQuery: 'select id, name from person' }
        - renameTable: { oldTableName: address, newTableName: addresses }
  - changeSet:
      id: tag
      author: bob
      changes:
        - tagDatabase: { tag: v1 }
  - changeSet:
      id: data
      author: bob
      changes:
        - insert: { tableName: person, columns: [ { column: { name: name, value: Ada } }, { column: { name: email, value: \"ada@example.com\" } } ] }
        - insert: { tableName: person, columns: [ { column: { name: name, value: Grace } }, { column: { name: email, value: \"grace@example.com\" } }, { column: { name: active, valueBoolean: false } } ] }
        - update: { tableName: person, columns: [ { column: { name: bio, value: \"it's Ada\" } } ], where: \"name = 'Ada'\" }
        - delete: { tableName: person, where: \"name = 'nobody'\" }
        - sql: insert into addresses (id, person_id) values (1, 1)
      rollback:
        - delete: { tableName: addresses }
        - delete: { tableName: person }
  - changeSet:
      id: reshape
      author: carol
      changes:
        - dropNotNullConstraint: { tableName: person, columnName: email, columnDataType: varchar(100) }
        - modifyDataType: { tableName: person, columnName: email, newDataType: varchar(200) }
        - dropDefaultValue: { tableName: addresses, columnName: city }
        - dropForeignKeyConstraint: { baseTableName: addresses, constraintName: fk_address_owner }
        - dropUniqueConstraint: { tableName: person, constraintName: uq_person_email }
        - dropIndex: { tableName: person, indexName: ix_person_email }
        - dropView: { viewName: v_person }
        - createView: { viewName: v_person, replaceIfExists: true, selectQuery: 'select id, email from person' }
        - createSequence: { sequenceName: ticket_seq, startValue: 100, incrementBy: 5 }
        - setTableRemarks: { tableName: person, remarks: people we know }
        - setColumnRemarks: { tableName: person, columnName: bio, columnDataType: text, remarks: \"what they're like\" }
        - dropPrimaryKey: { tableName: addresses }
        - addPrimaryKey: { tableName: addresses, columnNames: id, constraintName: pk_addresses }
      rollback: empty
  - changeSet:
      id: drops
      author: carol
      changes:
        - dropSequence: { sequenceName: ticket_seq }
        - dropColumn: { tableName: person, columnName: big }
        - dropTable: { tableName: addresses }
      rollback: empty
";

#[test]
fn the_change_types_lockstep_writes_for_mariadb_match_liquibase_forwards_and_backwards() {
    let files = [("db/changelog.yaml", MARIADB_CHANGES)];
    let applied = same_as_liquibase_on(TestDb::mariadb, &files, &[], "");
    assert_eq!(applied.len(), 7, "{applied:?}");
    // Up to the tag, everything has an inverse: each tool rolls back what the other applied,
    // with the automatic inverses, and the schemas stay equal.
    let (invertible, _) = MARIADB_CHANGES
        .split_once("  - changeSet:\n      id: data")
        .unwrap();
    let files = [("db/changelog.yaml", invertible)];
    assert!(each_rolls_back_what_the_other_applied(TestDb::mariadb, &files, 4).is_empty());
}

#[test]
fn sql_files_are_read_split_and_checksummed_as_liquibase_does() {
    let changelog = "databaseChangeLog:
  - property: { name: table, value: ledger }
  - changeSet:
      id: from-root
      author: alice
      changes:
        - sqlFile: { path: db/sql/create.sql }
      rollback: drop table ledger
  - changeSet:
      id: relative
      author: alice
      changes:
        - sqlFile: { path: sql/function.sql, relativeToChangelogFile: true, splitStatements: true, endDelimiter: /, stripComments: true }
      rollback: drop function ledger_total()
";
    let create = "-- the ledger\ncreate table ${table} (id int, amount int);\ninsert into ${table} values (1, 10);\n";
    let function = "/* sums */\ncreate function ledger_total() returns bigint as $$ select sum(amount) from ledger; $$ language sql\n/\n";
    let history = same_as_liquibase_for_files(
        &[
            ("db/changelog.yaml", changelog),
            ("db/sql/create.sql", create),
            ("db/sql/function.sql", function),
        ],
        &[],
        "",
    );
    assert_eq!(history.len(), 2, "{history:?}");
}

/// The change types MySQL writes its own way, as Liquibase writes them on MariaDB (and
/// `procedureBody`, Liquibase's other spelling of `procedureText`).
const MARIADB_RESHAPES: &str = "databaseChangeLog:
  - changeSet:
      id: base
      author: alice
      changes:
        - createTable: { tableName: dept, columns: [{ column: { name: id, type: int, constraints: { primaryKey: true } } }, { column: { name: name, type: varchar(20) } }] }
        - createTable: { tableName: emp, columns: [{ column: { name: id, type: int, constraints: { primaryKey: true, nullable: false } } }, { column: { name: dept_id, type: int, constraints: { foreignKeyName: fk_emp_dept, references: dept(id) } } }, { column: { name: boss_id, type: int } }, { column: { name: first, type: varchar(20) } }, { column: { name: last, type: varchar(20) } }] }
        - addForeignKeyConstraint: { baseTableName: emp, baseColumnNames: boss_id, constraintName: fk_emp_boss, referencedTableName: emp, referencedColumnNames: id }
        - insert: { tableName: dept, columns: [{ column: { name: id, valueNumeric: 1 } }, { column: { name: name, value: Research } }] }
        - insert: { tableName: emp, columns: [{ column: { name: id, valueNumeric: 1 } }, { column: { name: dept_id, valueNumeric: 1 } }, { column: { name: first, value: Ada } }] }
        - createSequence: { sequenceName: ticket_seq, startValue: 5 }
  - changeSet:
      id: reshape
      author: alice
      changes:
        - addAutoIncrement: { tableName: emp, columnName: id, columnDataType: int, startWith: 10 }
        - mergeColumns: { tableName: emp, column1Name: first, column2Name: last, finalColumnName: full_name, finalColumnType: varchar(41), joinString: ' ' }
        - alterSequence: { sequenceName: ticket_seq, incrementBy: 10 }
        - createProcedure: { procedureName: hello, procedureBody: 'CREATE PROCEDURE hello() BEGIN SELECT 1; END' }
        - dropAllForeignKeyConstraints: { baseTableName: emp }
      rollback: empty
  - changeSet:
      id: lookup
      author: alice
      changes:
        - addLookupTable: { existingTableName: dept, existingColumnName: name, newTableName: dept_names, newColumnName: name, newColumnDataType: varchar(20), constraintName: fk_dept_name }
  - changeSet:
      id: views
      author: alice
      changes:
        - createView: { viewName: v_emp, selectQuery: 'select id from emp' }
        - renameView: { oldViewName: v_emp, newViewName: v_staff }
  - changeSet:
      id: counter
      author: alice
      changes:
        - createTable: { tableName: counter, columns: [{ column: { name: id, type: int, autoIncrement: true, startWith: 100, constraints: { primaryKey: true } } }, { column: { name: label, type: varchar(10) } }] }
        - insert: { tableName: counter, columns: [{ column: { name: label, value: first } }] }
      rollback:
        - dropTable: { tableName: counter }
";

#[test]
fn auto_increments_merges_lookups_procedures_and_view_renames_match_liquibase_on_mariadb() {
    let files = [("db/changelog.yaml", MARIADB_RESHAPES)];
    let history = same_as_liquibase_on(TestDb::mariadb, &files, &[], "");
    assert_eq!(history.len(), 5, "{history:?}");
    // The lookup table, the view rename and the counter table have inverses: each tool rolls
    // back what the other applied.
    let left = each_rolls_back_what_the_other_applied(TestDb::mariadb, &files, 3);
    assert_eq!(left.len(), 2, "{left:?}");
}

#[test]
fn a_backslash_in_a_value_lands_as_written_on_every_database() {
    let changelog = r"databaseChangeLog:
  - changeSet:
      id: paths
      author: alice
      changes:
        - createTable: { tableName: paths, columns: [{ column: { name: id, type: varchar(20), constraints: { primaryKey: true } } }, { column: { name: path, type: varchar(40), defaultValue: 'C:\tmp' } }] }
        - insert: { tableName: paths, columns: [{ column: { name: id, value: one } }, { column: { name: path, value: 'C:\temp\new' } }] }
        - insert: { tableName: paths, columns: [{ column: { name: id, value: two } }] }
        - update: { tableName: paths, columns: [{ column: { name: path, value: '\\server\share' } }], where: id = 'two' }
      rollback:
        - dropTable: { tableName: paths }
  - changeSet:
      id: more
      author: alice
      changes:
        - loadUpdateData: { tableName: paths, file: paths.csv, relativeToChangelogFile: true, primaryKey: id }
";
    let files = [
        ("db/changelog.yaml", changelog),
        ("db/paths.csv", "id,path\nthree\\x,D:\\data\n"),
    ];
    for fresh in [TestDb::mariadb, TestDb::postgres, TestDb::sqlite] {
        assert_eq!(same_as_liquibase_on(fresh, &files, &[], "").len(), 2);
        // loadUpdateData's inverse finds its row by a key with a backslash in it.
        let left = each_rolls_back_what_the_other_applied(fresh, &files, 1);
        assert_eq!(left.len(), 1, "{left:?}");
    }
}

#[test]
fn changes_liquibase_cannot_make_on_mariadb_are_refused_before_the_first_write() {
    let changelog = "databaseChangeLog:
  - changeSet:
      id: base
      author: alice
      changes:
        - createSequence: { sequenceName: ticket_seq }
  - changeSet:
      id: rename
      author: alice
      changes:
        - renameSequence: { oldSequenceName: ticket_seq, newSequenceName: order_seq }
";
    let db = TestDb::mariadb();
    let files = [("db/changelog.yaml", changelog)];
    let project = Project::with_files(&db, &files, "");
    let (ok, text) = project.try_liquibase(&db, &["update"]);
    assert!(!ok && text.contains("RENAME TO order_seq"), "{text}");
    let db = TestDb::mariadb();
    let text = Project::with_files(&db, &files, "").lockstep_fails(&["update"]);
    assert!(
        text.contains("renameSequence cannot run on MySQL and MariaDB: Liquibase 4.28 writes `ALTER SEQUENCE … RENAME TO`, which MariaDB rejects"),
        "{text}"
    );
    assert!(!schema(&db).contains("ticket_seq"), "{}", schema(&db));
}

#[test]
fn sequences_merges_lookups_procedures_and_output_match_liquibase() {
    let changelog = "databaseChangeLog:
  - changeSet:
      id: base
      author: alice
      changes:
        - createTable: { tableName: dept, columns: [{ column: { name: id, type: int, constraints: { primaryKey: true } } }, { column: { name: name, type: varchar(20) } }] }
        - createTable: { tableName: emp, columns: [{ column: { name: id, type: int } }, { column: { name: dept_id, type: int, constraints: { foreignKeyName: fk_emp_dept, references: dept(id) } } }, { column: { name: first, type: varchar(20) } }, { column: { name: last, type: varchar(20) } }] }
        - insert: { tableName: dept, columns: [{ column: { name: id, valueNumeric: 1 } }, { column: { name: name, value: Research } }] }
        - insert: { tableName: emp, columns: [{ column: { name: id, valueNumeric: 1 } }, { column: { name: dept_id, valueNumeric: 1 } }, { column: { name: first, value: Ada } }, { column: { name: last, value: Lovelace } }] }
  - changeSet:
      id: reshape
      author: alice
      changes:
        - addAutoIncrement: { tableName: emp, columnName: id, columnDataType: int, startWith: 10, incrementBy: 2 }
        - mergeColumns: { tableName: emp, column1Name: first, column2Name: last, finalColumnName: full_name, finalColumnType: varchar(41), joinString: ' ' }
        - addLookupTable: { existingTableName: dept, existingColumnName: name, newTableName: dept_names, newColumnName: name, newColumnDataType: varchar(20), constraintName: fk_dept_name }
        - output: { message: reshaped }
  - changeSet:
      id: procedures
      author: alice
      changes:
        - createProcedure: { procedureName: hello, procedureText: 'create procedure hello() language sql as $$ select 1 $$' }
        - dropAllForeignKeyConstraints: { baseTableName: emp }
        - dropProcedure: { procedureName: hello }
";
    let history = same_as_liquibase("db/changelog.yaml", changelog, &[], "");
    assert_eq!(history.len(), 3, "{history:?}");
    // addLookupTable's automatic inverse, each tool rolling back what the other applied.
    let lookup = "databaseChangeLog:
  - changeSet:
      id: base
      author: alice
      changes:
        - createTable: { tableName: dept, columns: [{ column: { name: id, type: int } }, { column: { name: name, type: varchar(20) } }] }
        - insert: { tableName: dept, columns: [{ column: { name: id, valueNumeric: 1 } }, { column: { name: name, value: Research } }] }
  - changeSet:
      id: lookup
      author: alice
      changes:
        - addLookupTable: { existingTableName: dept, existingColumnName: name, newTableName: dept_names, newColumnName: name, newColumnDataType: varchar(20), constraintName: fk_dept_name }
";
    let files = [("db/changelog.yaml", lookup)];
    let left = each_rolls_back_what_the_other_applied(TestDb::postgres, &files, 1);
    assert_eq!(left.len(), 1, "{left:?}");
}

/// Liquibase applies `files` to one fresh SQLite database and Lockstep to another; their
/// histories and rows must be equal (their schemas differ where Liquibase rebuilds a table),
/// and each tool finds the other's database up to date.
fn same_rows_as_liquibase_on_sqlite(files: &[(&str, &str)]) -> (TestDb, TestDb) {
    let (by_liquibase, by_lockstep) = (TestDb::sqlite(), TestDb::sqlite());
    let theirs = Project::with_files(&by_liquibase, files, "");
    theirs.liquibase(&by_liquibase, &["update"]);
    let ours = Project::with_files(&by_lockstep, files, "");
    ours.lockstep(&["update"]);
    assert_eq!(history(&by_lockstep), history(&by_liquibase));
    assert_eq!(data(&by_lockstep), data(&by_liquibase));
    let status = ours.liquibase(&by_lockstep, &["status"]);
    assert!(status.contains("is up to date"), "{status}");
    let status = theirs.lockstep(&["status"]);
    assert!(status.contains("main is up to date"), "{status}");
    (by_liquibase, by_lockstep)
}

#[test]
fn merge_columns_on_sqlite_gives_liquibases_rows_and_keeps_what_its_rebuild_drops() {
    let base = "databaseChangeLog:
  - changeSet:
      id: base
      author: alice
      changes:
        - createTable: { tableName: emp, columns: [{ column: { name: id, type: int } }, { column: { name: code, type: varchar(10), constraints: { unique: true } } }, { column: { name: active, type: boolean } }, { column: { name: first, type: varchar(20) } }, { column: { name: last, type: varchar(20) } }] }
        - insert: { tableName: emp, columns: [{ column: { name: id, valueNumeric: 1 } }, { column: { name: code, value: A1 } }, { column: { name: active, valueBoolean: true } }, { column: { name: first, value: Ada } }, { column: { name: last, value: Lovelace } }] }
        - insert: { tableName: emp, columns: [{ column: { name: id, valueNumeric: 2 } }, { column: { name: code, value: B2 } }, { column: { name: first, value: Grace } }] }
";
    let merge = "  - changeSet:
      id: merge
      author: alice
      changes:
        - mergeColumns: { tableName: emp, column1Name: first, column2Name: last, finalColumnName: full_name, finalColumnType: varchar(41), joinString: ' ' }
";
    let changelog = format!("{base}{merge}");
    let files = [("db/changelog.yaml", changelog.as_str())];
    let (by_liquibase, by_lockstep) = same_rows_as_liquibase_on_sqlite(&files);
    // Liquibase's rebuild loses the unique constraint and writes `BOOLEAN(2000000000)`; the
    // columns dropped in place keep both.
    let theirs = schema(&by_liquibase);
    assert!(theirs.contains("BOOLEAN(2000000000)"), "{theirs}");
    assert!(!theirs.contains("UNIQUE"), "{theirs}");
    let ours = schema(&by_lockstep);
    for kept in ["UNIQUE", "active BOOLEAN", "full_name VARCHAR(41)"] {
        assert!(ours.contains(kept), "{kept}: {ours}");
    }
    assert!(!ours.contains("first"), "{ours}");

    // With a view on the table, Liquibase's rebuild fails; the view does not stop Lockstep.
    let view = "  - changeSet:
      id: view
      author: alice
      changes:
        - createView: { viewName: codes, selectQuery: 'select id, code from emp' }
";
    let changelog = format!("{base}{view}{merge}");
    let files = [("db/changelog.yaml", changelog.as_str())];
    let db = TestDb::sqlite();
    let (ok, text) = Project::with_files(&db, &files, "").try_liquibase(&db, &["update"]);
    assert!(!ok && text.contains("error in view codes"), "{text}");
    let db = TestDb::sqlite();
    Project::with_files(&db, &files, "").lockstep(&["update"]);
    use lockstep_changelog::db::Sql;
    let codes = db
        .session()
        .query("SELECT code FROM codes ORDER BY id", &[])
        .unwrap();
    assert_eq!(codes.rows.len(), 2);
}

#[test]
fn the_types_that_merge_and_modify_columns_name_are_written_as_liquibase_writes_them() {
    // `clob` is no PostgreSQL type: Liquibase writes TEXT there (LONGTEXT on MariaDB), and
    // `datetime` is TIMESTAMP, `boolean` TINYINT(1) on MariaDB.
    let changelog = "databaseChangeLog:
  - changeSet:
      id: base
      author: alice
      changes:
        - createTable: { tableName: emp, columns: [{ column: { name: id, type: int } }, { column: { name: first, type: varchar(20) } }, { column: { name: last, type: varchar(20) } }, { column: { name: note, type: varchar(20) } }, { column: { name: seen, type: varchar(30) } }, { column: { name: flag, type: varchar(5) } }] }
        - insert: { tableName: emp, columns: [{ column: { name: id, valueNumeric: 1 } }, { column: { name: first, value: Ada } }, { column: { name: last, value: Lovelace } }, { column: { name: note, value: hi } }, { column: { name: seen, value: '2020-01-02 03:04:05' } }, { column: { name: flag, value: '1' } }] }
  - changeSet:
      id: types
      author: alice
      changes:
        - mergeColumns: { tableName: emp, column1Name: first, column2Name: last, finalColumnName: full_name, finalColumnType: clob, joinString: ' ' }
        - modifyDataType: { tableName: emp, columnName: note, newDataType: clob }
        - modifyDataType: { tableName: emp, columnName: seen, newDataType: datetime }
        - modifyDataType: { tableName: emp, columnName: id, newDataType: bigint }
        - modifyDataType: { tableName: emp, columnName: flag, newDataType: boolean }
";
    let files = [("db/changelog.yaml", changelog)];
    for fresh in [TestDb::postgres, TestDb::mariadb] {
        assert_eq!(same_as_liquibase_on(fresh, &files, &[], "").len(), 2);
    }
}

#[test]
fn defaults_and_autoincrement_on_sqlite_rebuild_the_table_keeping_what_liquibases_rebuild_loses() {
    let base = "databaseChangeLog:
  - changeSet:
      id: base
      author: alice
      changes:
        - createTable: { tableName: emp, columns: [{ column: { name: id, type: int, constraints: { primaryKey: true } } }, { column: { name: code, type: varchar(10), constraints: { unique: true } } }, { column: { name: active, type: boolean } }, { column: { name: level, type: int } }] }
        - createIndex: { tableName: emp, indexName: emp_level, columns: [{ column: { name: level } }] }
        - sql: { sql: 'CREATE TABLE badge (emp_id INT REFERENCES emp (id) ON DELETE CASCADE)' }
        - insert: { tableName: emp, columns: [{ column: { name: id, valueNumeric: 1 } }, { column: { name: code, value: A1 } }, { column: { name: active, valueBoolean: true } }, { column: { name: level, valueNumeric: 3 } }] }
        - insert: { tableName: emp, columns: [{ column: { name: id, valueNumeric: 2 } }, { column: { name: code, value: B2 } }] }
        - insert: { tableName: badge, columns: [{ column: { name: emp_id, valueNumeric: 1 } }] }
";
    let default = "  - changeSet:
      id: default
      author: alice
      changes:
        - addDefaultValue: { tableName: emp, columnName: level, columnDataType: int, defaultValueNumeric: 1 }
        - addDefaultValue: { tableName: emp, columnName: active, defaultValueBoolean: false }
";
    let auto = "  - changeSet:
      id: auto
      author: alice
      changes:
        - addAutoIncrement: { tableName: emp, columnName: id, columnDataType: int }
";
    let changelog = format!("{base}{auto}{default}");
    let files = [("db/changelog.yaml", changelog.as_str())];
    let (by_liquibase, by_lockstep) = same_rows_as_liquibase_on_sqlite(&files);
    // A row that names only its code gets the next id and both defaults, in both databases.
    use lockstep_changelog::db::Sql;
    for db in [&by_liquibase, &by_lockstep] {
        db.session()
            .batch("INSERT INTO emp (code) VALUES ('C3')")
            .unwrap();
    }
    assert_eq!(data(&by_lockstep), data(&by_liquibase));
    assert!(
        data(&by_lockstep).contains(r#"emp: [Integer(3), Text("C3"), Integer(0), Integer(1)]"#),
        "{}",
        data(&by_lockstep)
    );
    // Liquibase's rebuild loses the unique constraint and rewrites the boolean column's type;
    // Lockstep's keeps the table as it was, the edited columns aside.
    let theirs = schema(&by_liquibase);
    assert!(
        !theirs.contains("UNIQUE") && theirs.contains("BOOLEAN(2000000000)"),
        "{theirs}"
    );
    let ours = schema(&by_lockstep);
    for kept in [
        "code VARCHAR(10)",
        "UNIQUE",
        "active BOOLEAN DEFAULT 0",
        "level INTEGER DEFAULT 1",
        "id INTEGER CONSTRAINT PK_EMP PRIMARY KEY AUTOINCREMENT",
        "CREATE INDEX emp_level",
        "REFERENCES emp (id) ON DELETE CASCADE",
    ] {
        assert!(ours.contains(kept), "{kept}: {ours}");
    }
    // Dropping the table to re-create it did not fire the child's ON DELETE CASCADE.
    assert_eq!(by_lockstep.count("SELECT COUNT(*) FROM badge"), 1);
    // Lockstep rolls back Liquibase's addDefaultValue by rebuilding Liquibase's table, which
    // Liquibase cannot do (dropDefaultValue is not supported on SQLite).
    Project::with_files(&by_liquibase, &files, "").lockstep(&["rollback", "--count", "1"]);
    let theirs = schema(&by_liquibase);
    assert!(!theirs.contains("DEFAULT"), "{theirs}");
    assert_eq!(history(&by_liquibase).len(), 2);

    // With a view on the table (which Liquibase's rebuild breaks, see mergeColumns above): the
    // view keeps working, `startWith` sets the next id and a later rebuild keeps it, and
    // addDefaultValue rolls back by a rebuild that drops the default (Liquibase cannot:
    // dropDefaultValue is not supported on SQLite).
    let view = "  - changeSet:
      id: view
      author: alice
      changes:
        - createView: { viewName: codes, selectQuery: 'select id, code from emp' }
";
    let changelog = format!(
        "{base}{view}{}{default}",
        auto.replace("columnDataType: int", "columnDataType: int, startWith: 10")
    );
    let db = TestDb::sqlite();
    let project = Project::with_file(&db, "db/changelog.yaml", &changelog);
    project.lockstep(&["update"]);
    project.lockstep(&["rollback", "--count", "1"]);
    let ours = schema(&db);
    assert!(!ours.contains("DEFAULT"), "{ours}");
    assert!(
        ours.contains("AUTOINCREMENT") && ours.contains("UNIQUE"),
        "{ours}"
    );
    let mut session = db.session();
    session
        .batch("INSERT INTO emp (code) VALUES ('C3')")
        .unwrap();
    let codes = session
        .query("SELECT id, code FROM codes ORDER BY id", &[])
        .unwrap();
    assert_eq!(
        codes
            .rows
            .iter()
            .map(|row| row[0].as_integer().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 10]
    );
}

#[test]
fn add_column_of_a_key_on_sqlite_rebuilds_the_table_as_liquibase_does_keeping_its_names() {
    let changelog = "databaseChangeLog:
  - changeSet:
      id: tables
      author: alice
      changes:
        - createTable: { tableName: dept, columns: [{ column: { name: id, type: int, constraints: { primaryKey: true } } }, { column: { name: name, type: varchar(20) } }] }
        - createTable: { tableName: tag, columns: [{ column: { name: label, type: varchar(20) } }] }
        - insert: { tableName: dept, columns: [{ column: { name: id, valueNumeric: 1 } }, { column: { name: name, value: Research } }] }
        - insert: { tableName: tag, columns: [{ column: { name: label, value: red } }] }
        - insert: { tableName: tag, columns: [{ column: { name: label, value: blue } }] }
  - changeSet:
      id: code
      author: alice
      changes:
        - addColumn: { tableName: dept, columns: [{ column: { name: code, type: varchar(10), constraints: { unique: true, uniqueConstraintName: uq_dept_code } } }, { column: { name: floor, type: int } }] }
  - changeSet:
      id: tag-id
      author: alice
      changes:
        - addColumn: { tableName: tag, columns: [{ column: { name: id, type: int, autoIncrement: true, constraints: { primaryKey: true } } }] }
";
    let files = [("db/changelog.yaml", changelog)];
    let (by_liquibase, by_lockstep) = same_rows_as_liquibase_on_sqlite(&files);
    // The rows that were there are numbered as they were stored, in both.
    assert!(
        data(&by_lockstep).contains(r#"tag: [Text("blue"), Integer(2)]"#),
        "{}",
        data(&by_lockstep)
    );
    let theirs = schema(&by_liquibase);
    assert!(
        theirs.contains("UNIQUE (code)") && !theirs.contains("uq_dept_code"),
        "{theirs}"
    );
    let ours = schema(&by_lockstep);
    for kept in [
        "code VARCHAR(10), floor INTEGER, CONSTRAINT PK_DEPT PRIMARY KEY (id), CONSTRAINT uq_dept_code UNIQUE (code)",
        "id INTEGER CONSTRAINT PK_TAG PRIMARY KEY AUTOINCREMENT",
    ] {
        assert!(ours.contains(kept), "{kept}: {ours}");
    }
    use lockstep_changelog::db::Sql;
    for db in [&by_liquibase, &by_lockstep] {
        let mut session = db.session();
        session
            .batch("INSERT INTO tag (label) VALUES ('green')")
            .unwrap();
        let refused = session.batch("INSERT INTO dept (id, code) VALUES (2, 'R'), (3, 'R')");
        assert!(refused.is_err(), "the code is unique");
    }
    assert_eq!(data(&by_lockstep), data(&by_liquibase));

    // Rolled back, the columns go with their keys (dropColumn rebuilds the table for them).
    Project::with_files(&by_lockstep, &files, "").lockstep(&["rollback", "--count", "2"]);
    let before = TestDb::sqlite();
    let first = changelog
        .split("  - changeSet:\n      id: code")
        .next()
        .unwrap();
    Project::with_file(&before, "db/changelog.yaml", first).lockstep(&["update"]);
    assert_eq!(schema(&by_lockstep), schema(&before));
}

#[test]
fn drop_column_on_sqlite_drops_a_keyed_or_indexed_column_where_liquibase_records_it_and_keeps_it() {
    let base = "databaseChangeLog:
  - changeSet:
      id: table
      author: alice
      changes:
        - sql: { sql: 'CREATE TABLE t (id INTEGER PRIMARY KEY, code VARCHAR(10) CONSTRAINT uq_code UNIQUE, n INT, m INT CHECK (m > n)); CREATE INDEX t_n ON t (n); INSERT INTO t VALUES (1, ''a'', 2, 3)' }
";
    let drops = "  - changeSet:
      id: drop-code
      author: alice
      changes:
        - dropColumn: { tableName: t, columnName: code }
  - changeSet:
      id: drop-n-m
      author: alice
      changes:
        - dropColumn: { tableName: t, columnName: n }
        - dropColumn: { tableName: t, columnName: m }
";
    let changelog = format!("{base}{drops}");
    let files = [("db/changelog.yaml", changelog.as_str())];
    let (by_liquibase, by_lockstep) = (TestDb::sqlite(), TestDb::sqlite());
    Project::with_files(&by_liquibase, &files, "").liquibase(&by_liquibase, &["update"]);
    Project::with_files(&by_lockstep, &files, "").lockstep(&["update"]);
    assert_eq!(history(&by_lockstep), history(&by_liquibase));
    // Liquibase's rebuild re-creates the table with the columns it was to drop; ours drops them
    // with the unique key, the index on n and the CHECK that names n.
    let theirs = schema(&by_liquibase);
    assert!(theirs.contains("code VARCHAR(10), n INTEGER"), "{theirs}");
    let ours = schema(&by_lockstep);
    assert!(
        ours.contains("CREATE TABLE t (id INTEGER PRIMARY KEY)"),
        "{ours}"
    );
    assert!(!ours.contains("t_n"), "the index on n went with it: {ours}");
    assert_eq!(data(&by_lockstep), "t: [Integer(1)]");

    // A view on the table (which breaks Liquibase's rebuild) keeps working; but a column a view
    // reads is not dropped, as the view would break.
    let with_view = |select: &str| {
        base.replace(
            "INSERT INTO t",
            &format!("CREATE VIEW ids AS SELECT {select} FROM t; INSERT INTO t"),
        )
    };
    let db = TestDb::sqlite();
    let changelog = format!("{}{drops}", with_view("id"));
    Project::with_file(&db, "db/changelog.yaml", &changelog).lockstep(&["update"]);
    assert_eq!(db.count("SELECT COUNT(*) FROM ids WHERE id = 1"), 1);
    let reads_m = with_view("id, m");
    let changelog = format!(
        "{reads_m}  - changeSet:\n      id: drop-m\n      author: alice\n      changes:\n        - dropColumn: {{ tableName: t, columnName: m }}\n"
    );
    let db = TestDb::sqlite();
    let text = Project::with_file(&db, "db/changelog.yaml", &changelog).lockstep_fails(&["update"]);
    assert!(text.contains("ids"), "{text}");
    assert!(schema(&db).contains("m INT"), "{}", schema(&db));
}

#[test]
fn an_unquoted_comma_in_a_yaml_flow_value_is_refused_where_liquibase_drops_what_follows_it() {
    // In a `{ … }` mapping a comma ends the value: YAML reads `2 AS two` as a key of its own.
    // Liquibase ignores that key and creates a view of `select 1 AS one` alone.
    let changelog = "databaseChangeLog:
  - changeSet:
      id: view
      author: alice
      changes:
        - createView: { viewName: numbers, selectQuery: select 1 AS one, 2 AS two }
";
    let files = [("db/changelog.yaml", changelog)];
    let db = TestDb::postgres();
    Project::with_files(&db, &files, "").liquibase(&db, &["update"]);
    let theirs = schema(&db);
    assert!(theirs.contains("SELECT 1 AS one;"), "{theirs}");
    let db = TestDb::postgres();
    let text = Project::with_files(&db, &files, "").lockstep_fails(&["update"]);
    assert!(
        text.contains(
            "db/changelog.yaml:6: `2 AS two` on `createView` is not supported by Lockstep"
        ),
        "{text}"
    );
    assert!(!schema(&db).contains("numbers"), "{}", schema(&db));
}

#[test]
fn a_stop_change_stops_the_update_before_its_changeset_and_says_why() {
    let db = TestDb::postgres();
    let project = Project::with_file(
        &db,
        "db/changelog.yaml",
        "databaseChangeLog:
  - changeSet:
      id: before
      author: alice
      changes:
        - createTable: { tableName: person, columns: [{ column: { name: id, type: int } }] }
  - changeSet:
      id: halt
      author: alice
      changes:
        - stop: { message: check the backfill first }
  - changeSet:
      id: after
      author: alice
      changes:
        - createTable: { tableName: later, columns: [{ column: { name: id, type: int } }] }
",
    );
    let text = project.lockstep_fails(&["update"]);
    assert!(
        text.contains("changeset db/changelog.yaml::halt::alice failed: stopped by a `stop` change: check the backfill first"),
        "{text}"
    );
    assert_eq!(history(&db).len(), 1, "{:?}", history(&db));
}

#[test]
fn a_changelogs_own_preconditions_gate_the_update_as_in_liquibase() {
    // Met, and unmet with WARN: both tools apply everything.
    let warned = "databaseChangeLog:
  - preConditions:
      - dbms: { type: postgresql }
  - include: { file: db/part.yaml }
";
    let part = "databaseChangeLog:
  - preConditions:
      - onFail: WARN
      - tableExists: { tableName: legacy_people }
  - changeSet:
      id: person
      author: alice
      changes:
        - createTable: { tableName: person, columns: [{ column: { name: id, type: int } }] }
";
    same_as_liquibase_for_files(
        &[("db/changelog.yaml", warned), ("db/part.yaml", part)],
        &[],
        "",
    );
    // Unmet with HALT (the default): nothing is applied, and the message says why.
    let db = TestDb::postgres();
    let project = Project::with_file(
        &db,
        "db/changelog.yaml",
        "databaseChangeLog:
  - preConditions:
      - dbms: { type: mysql }
  - changeSet:
      id: person
      author: alice
      changes:
        - createTable: { tableName: person, columns: [{ column: { name: id, type: int } }] }
",
    );
    let text = project.lockstep_fails(&["update"]);
    assert!(
        text.contains("db/changelog.yaml: the changelog's preConditions stop the update: a precondition does not hold; nothing was applied"),
        "{text}"
    );
    assert!(!schema(&db).contains("person"), "{}", schema(&db));
}

#[test]
fn an_includes_context_and_labels_scope_its_changesets_and_their_history_rows() {
    let files = [
        (
            "db/changelog.yaml",
            "databaseChangeLog:
  - include: { file: db/part.yaml, context: prod, labels: core }
  - changeSet:
      id: top
      author: alice
      changes:
        - createTable: { tableName: top_table, columns: [{ column: { name: id, type: int } }] }
",
        ),
        (
            "db/part.yaml",
            "databaseChangeLog:
  - changeSet:
      id: inner
      author: alice
      context: eu
      labels: billing
      changes:
        - createTable: { tableName: inner_table, columns: [{ column: { name: id, type: int } }] }
  - changeSet:
      id: plain
      author: alice
      changes:
        - createTable: { tableName: plain_table, columns: [{ column: { name: id, type: int } }] }
",
        ),
    ];
    let history =
        same_as_liquibase_for_files(&files, &["--contexts=prod,eu"], ", context: 'prod,eu'");
    assert!(
        history[0].ends_with("|prod AND eu|core,billing"),
        "{history:?}"
    );
    assert!(history[1].ends_with("|prod|core"), "{history:?}");
    let history = same_as_liquibase_for_files(&files, &["--contexts=test"], ", context: test");
    assert_eq!(
        history.len(),
        1,
        "only the changeset outside the include: {history:?}"
    );
}

#[test]
fn csv_data_is_loaded_and_checksummed_as_liquibase_loads_it() {
    let changelog = "databaseChangeLog:
  - changeSet:
      id: people
      author: alice
      changes:
        - createTable: { tableName: people, columns: [{ column: { name: id, type: int, constraints: { primaryKey: true } } }, { column: { name: name, type: varchar(40) } }, { column: { name: active, type: boolean } }, { column: { name: score, type: 'numeric(5,2)' } }] }
  - changeSet:
      id: load
      author: alice
      changes:
        - loadData: { tableName: people, file: data/people.csv, relativeToChangelogFile: true }
  - changeSet:
      id: refresh
      author: alice
      changes:
        - loadUpdateData: { tableName: people, file: data/changes.csv, relativeToChangelogFile: true, primaryKey: id }
";
    let people =
        "id,name,active,score\n1,Ada,true,3.5\n\n2,\"Lovelace, Ada\",false,\n3,NULL,true,1\n";
    let changes = "id,name,active,score\n2,\"O'Neil\",true,2\n4,Grace,false,4.25\n";
    for fresh in [TestDb::postgres, TestDb::mariadb, TestDb::sqlite] {
        let history = same_as_liquibase_on(
            fresh,
            &[
                ("db/changelog.yaml", changelog),
                ("db/data/people.csv", people),
                ("db/data/changes.csv", changes),
            ],
            &[],
            "",
        );
        assert_eq!(history.len(), 3, "{history:?}");
        // loadUpdateData's automatic inverse deletes its rows by their key, as Liquibase's does.
        let left = each_rolls_back_what_the_other_applied(
            fresh,
            &[
                ("db/changelog.yaml", changelog),
                ("db/data/people.csv", people),
                ("db/data/changes.csv", changes),
            ],
            1,
        );
        assert_eq!(left.len(), 2, "{left:?}");
    }
}

const CONFIGURED_COLUMNS: &str = "databaseChangeLog:
  - changeSet:
      id: people
      author: alice
      changes:
        - createTable: { tableName: people, columns: [{ column: { name: id, type: int, constraints: { primaryKey: true } } }, { column: { name: name, type: varchar(40) } }, { column: { name: active, type: boolean } }, { column: { name: score_text, type: varchar(20) } }, { column: { name: ref, type: varchar(40) } }, { column: { name: nick, type: varchar(10) } }] }
  - changeSet:
      id: load
      author: alice
      changes:
        - loadData:
            tableName: people
            file: people.csv
            relativeToChangelogFile: true
            columns:
              - column: { name: id, type: NUMERIC }
              - column: { header: Full Name, name: name, type: STRING }
              - column: { name: junk, type: SKIP }
              - column: { name: active, type: BOOLEAN }
              - column: { index: 4, name: score_text, type: NUMERIC }
              - column: { name: ref, type: UUID }
              - column: { name: nick, type: STRING }
  - changeSet:
      id: refresh
      author: alice
      changes:
        - loadUpdateData:
            tableName: people
            file: refresh.csv
            relativeToChangelogFile: true
            primaryKey: id
            columns:
              - column: { header: Key, name: id, type: NUMERIC }
              - column: { header: Full Name, name: name }
              - column: { name: active, type: BOOLEAN }
";

const CONFIGURED_COLUMN_FILES: [(&str, &str); 2] = [
    (
        "db/people.csv",
        "id,Full Name,junk,active,points,ref,nick\n1,Ada,x,yes,3.50,1b4e28ba-2fa1-11d2-883f-0003f0059e6b,\n2,Grace,y,0,007,NULL,NULL\n3,\"O'Neil\",z,T,12,,gg\n",
    ),
    (
        "db/refresh.csv",
        "Key,Full Name,active\n2,Grace H,true\n4,Hedy,n\n",
    ),
];

#[test]
fn loaded_columns_are_mapped_typed_and_skipped_as_liquibase_loads_them() {
    let files = [
        &[("db/changelog.yaml", CONFIGURED_COLUMNS)][..],
        &CONFIGURED_COLUMN_FILES,
    ]
    .concat();
    for fresh in [TestDb::postgres, TestDb::mariadb, TestDb::sqlite] {
        let history = same_as_liquibase_on(fresh, &files, &[], "");
        assert_eq!(history.len(), 3, "{history:?}");
        let left = each_rolls_back_what_the_other_applied(fresh, &files, 1);
        assert_eq!(left.len(), 2, "{left:?}");
    }
}

#[test]
fn loaded_dates_and_expressions_match_liquibase_and_are_refused_on_sqlite() {
    let changelog = "databaseChangeLog:
  - changeSet:
      id: events
      author: alice
      changes:
        - createTable: { tableName: events, columns: [{ column: { name: id, type: int } }, { column: { name: day, type: date } }, { column: { name: at, type: datetime } }, { column: { name: label, type: varchar(20) } }] }
  - changeSet:
      id: load
      author: alice
      changes:
        - loadData:
            tableName: events
            file: events.csv
            relativeToChangelogFile: true
            columns:
              - column: { name: day, type: DATE }
              - column: { name: at, type: DATETIME }
              - column: { name: label, type: COMPUTED }
";
    let files = [
        ("db/changelog.yaml", changelog),
        (
            "db/events.csv",
            "id,day,at,label\n1,2020-01-02,2020-01-02T10:11:12,upper('x')\n2,,2021-03-04 05:06:07,NULL\n",
        ),
    ];
    for fresh in [TestDb::postgres, TestDb::mariadb] {
        assert_eq!(same_as_liquibase_on(fresh, &files, &[], "").len(), 2);
    }
    let db = TestDb::sqlite();
    let text = Project::with_files(&db, &files, "").lockstep_fails(&["update"]);
    assert!(
        text.contains("db/changelog.yaml:8: changeset db/changelog.yaml::load::alice: loadData column `day` has type DATE, which Liquibase does not load into SQLite as written"),
        "{text}"
    );
    assert!(!schema(&db).contains("events"), "{}", schema(&db));
}

/// Change types Liquibase 4.28 refuses on SQLite at validation (mostly "… is not supported
/// on sqlite"), before it writes anything.
const REFUSED_ON_SQLITE_BY_BOTH: [&str; 13] = [
    "addPrimaryKey: { tableName: dept, columnNames: id, constraintName: pk_dept }",
    "addUniqueConstraint: { tableName: dept, columnNames: code, constraintName: uq_dept_code }",
    "addForeignKeyConstraint: { baseTableName: emp, baseColumnNames: dept_id, constraintName: fk_emp_dept, referencedTableName: dept, referencedColumnNames: id }",
    "modifyDataType: { tableName: emp, columnName: name, newDataType: varchar(100) }",
    "addNotNullConstraint: { tableName: emp, columnName: name, columnDataType: varchar(50), defaultNullValue: x }",
    "dropNotNullConstraint: { tableName: dept, columnName: id, columnDataType: int }",
    "dropUniqueConstraint: { tableName: dept, constraintName: uq_dept_code }",
    "dropForeignKeyConstraint: { baseTableName: emp, constraintName: fk_emp_dept }",
    "renameSequence: { oldSequenceName: s1, newSequenceName: s2 }",
    "setTableRemarks: { tableName: emp, remarks: people }",
    "setColumnRemarks: { tableName: emp, columnName: name, remarks: full name }",
    "addLookupTable: { existingTableName: dept, existingColumnName: code, newTableName: codes, newColumnName: code, newColumnDataType: varchar(10), constraintName: fk_dept_code }",
    "dropProcedure: { procedureName: p }",
];

#[test]
fn what_liquibase_refuses_on_sqlite_lockstep_refuses_too_before_the_first_write() {
    let mut changelog = String::from("databaseChangeLog:
  - changeSet:
      id: base
      author: alice
      changes:
        - createTable: { tableName: dept, columns: [{ column: { name: id, type: int } }, { column: { name: code, type: varchar(10) } }, { column: { name: title, type: varchar(50) } }] }
        - createTable: { tableName: emp, columns: [{ column: { name: id, type: int } }, { column: { name: dept_id, type: int } }, { column: { name: name, type: varchar(50) } }] }
");
    for (i, change) in REFUSED_ON_SQLITE_BY_BOTH.iter().enumerate() {
        changelog.push_str(&format!(
            "  - changeSet:\n      id: c{i}\n      author: alice\n      changes:\n        - {change}\n"
        ));
    }
    let files = [("db/changelog.yaml", changelog.as_str())];
    let names = REFUSED_ON_SQLITE_BY_BOTH.map(|change| change.split_once(':').unwrap().0);
    let db = TestDb::sqlite();
    let (ok, text) = Project::with_files(&db, &files, "").try_liquibase(&db, &["update"]);
    assert!(!ok);
    for name in names {
        // addLookupTable is refused for the primary key it would add.
        let refusal = match name {
            "addLookupTable" => "AddPrimaryKeyStatement on sqlite".to_string(),
            _ => format!("{name} is not supported on sqlite"),
        };
        assert!(text.contains(&refusal), "{name}: {text}");
    }
    assert!(!schema(&db).contains("dept"), "{}", schema(&db));
    let db = TestDb::sqlite();
    let text = Project::with_files(&db, &files, "").lockstep_fails(&["update"]);
    for name in names {
        assert!(
            text.contains(&format!("{name} cannot run on SQLite")),
            "{name}: {text}"
        );
    }
    assert!(!schema(&db).contains("dept"), "{}", schema(&db));
}

#[test]
fn sequence_changes_on_sqlite_are_recorded_and_do_nothing_as_in_liquibase_and_say_so() {
    let changelog = "databaseChangeLog:
  - changeSet:
      id: tickets
      author: alice
      changes:
        - createTable: { tableName: tickets, columns: [{ column: { name: id, type: int } }] }
  - changeSet:
      id: sequence
      author: alice
      changes:
        - createSequence: { sequenceName: ticket_seq, startValue: 100 }
  - changeSet:
      id: step
      author: alice
      changes:
        - alterSequence: { sequenceName: ticket_seq, incrementBy: 5 }
        - dropSequence: { sequenceName: ticket_seq }
      rollback: empty
";
    let files = [("db/changelog.yaml", changelog)];
    assert_eq!(
        same_as_liquibase_on(TestDb::sqlite, &files, &[], "").len(),
        3
    );
    // Only the last: Liquibase cannot roll back createSequence there ("dropSequence is not
    // supported on sqlite", though it runs dropSequence forwards).
    let left = each_rolls_back_what_the_other_applied(TestDb::sqlite, &files, 1);
    assert_eq!(left.len(), 2, "{left:?}");
    let db = TestDb::sqlite();
    let text = Project::with_files(&db, &files, "").lockstep(&["update"]);
    assert!(
        text.contains("note: changeset db/changelog.yaml::sequence::alice: createSequence did nothing: SQLite has no sequences"),
        "{text}"
    );
}

#[test]
fn a_misspelt_or_unimplemented_changeset_attribute_refuses_its_changeset() {
    let yaml = "databaseChangeLog:
  - changeSet:
      id: everywhere
      author: alice
      contex: test
      changes:
        - createTable: { tableName: fixtures, columns: [{ column: { name: id, type: int } }] }
  - changeSet:
      id: last
      author: alice
      runOrder: last
      changes:
        - createTable: { tableName: late, columns: [{ column: { name: id, type: int } }] }
";
    // Liquibase ignores both: the test-only table lands in every database.
    let db = TestDb::postgres();
    let files = [("db/changelog.yaml", yaml)];
    Project::with_files(&db, &files, "").liquibase(&db, &["update", "--contexts=prod"]);
    assert!(schema(&db).contains("fixtures"), "{}", schema(&db));
    // Lockstep refuses both, saying why, before it writes anything.
    let db = TestDb::postgres();
    let text = Project::with_files(&db, &files, ", context: prod").lockstep_fails(&["update"]);
    assert!(
        text.contains(
            "db/changelog.yaml:3: `contex` is not a changeset attribute Lockstep knows (misspelt?)"
        ),
        "{text}"
    );
    assert!(
        text.contains("db/changelog.yaml:9: changeset attribute `runOrder: last`: Lockstep runs changesets in changelog order"),
        "{text}"
    );
    assert!(!schema(&db).contains("fixtures"), "{}", schema(&db));
    // The same in a formatted SQL changelog.
    let sql = "--liquibase formatted sql\n--changeset alice:1 contex:test\ncreate table fixtures (id int);\n";
    let db = TestDb::postgres();
    let text = Project::new(&db, sql).lockstep_fails(&["update"]);
    assert!(
        text.contains("db/changelog.sql:2: `contex` is not a changeset attribute Lockstep knows"),
        "{text}"
    );
}

#[test]
fn a_csv_whose_header_line_is_a_comment_is_refused_before_the_first_write() {
    let changelog = "databaseChangeLog:
  - changeSet:
      id: people
      author: alice
      changes:
        - createTable: { tableName: people, columns: [{ column: { name: id, type: int } }, { column: { name: name, type: varchar(40) } }] }
  - changeSet:
      id: load
      author: alice
      changes:
        - loadData: { tableName: people, file: people.csv, relativeToChangelogFile: true }
";
    let files = [
        ("db/changelog.yaml", changelog),
        ("db/people.csv", "# who we know\nid,name\n1,Ada\n"),
    ];
    // Liquibase takes the comment for the header and fails in the second changeset, after the
    // first committed.
    let db = TestDb::postgres();
    let (ok, text) = Project::with_files(&db, &files, "").try_liquibase(&db, &["update"]);
    assert!(!ok && text.contains("Header has 1"), "{text}");
    // Lockstep refuses it, saying why, and writes nothing.
    let db = TestDb::postgres();
    let text = Project::with_files(&db, &files, "").lockstep_fails(&["update"]);
    assert!(
        text.contains("db/changelog.yaml:8: db/people.csv:1: the header line `# who we know` starts with the comment prefix `#`"),
        "{text}"
    );
    assert!(!schema(&db).contains("people"), "{}", schema(&db));
}

const WITH_A_LEGACY_CHANGESET: &str = "databaseChangeLog:
  - changeSet:
      id: person
      author: alice
      changes:
        - createTable: { tableName: person, columns: [{ column: { name: first, type: text } }, { column: { name: last, type: text } }] }
  - changeSet:
      id: legacy-merge
      author: alice
      context: legacy
      changes:
        - executeCommand: { executable: /usr/bin/touch, args: [{ arg: { value: /tmp/legacy-ran } }] }
";

#[test]
fn a_change_lockstep_refuses_matters_only_in_a_changeset_that_runs() {
    same_as_liquibase(
        "db/changelog.yaml",
        WITH_A_LEGACY_CHANGESET,
        &["--contexts=prod"],
        ", context: prod",
    );
    let db = TestDb::postgres();
    let project = Project::with_file(&db, "db/changelog.yaml", WITH_A_LEGACY_CHANGESET);
    let text = project.lockstep_fails(&["update"]);
    assert!(
        text.contains(
            "db/changelog.yaml:12: `executeCommand` runs a program on the machine that applies the changelog"
        ),
        "{text}"
    );
    let schema = schema(&db);
    assert!(
        !schema.contains("person") && !schema.contains("databasechangelog"),
        "refused before the first write, the tracking tables included: {schema}"
    );
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
    for fresh in [TestDb::postgres, TestDb::mariadb] {
        structured_changes_match_liquibase_forwards_and_backwards(fresh);
    }
}

fn structured_changes_match_liquibase_forwards_and_backwards(fresh: fn() -> TestDb) {
    let (by_liquibase, by_lockstep) = (fresh(), fresh());
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
