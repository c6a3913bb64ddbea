--liquibase formatted sql

--changeset quickstart:create-person
--comment: the table the app reads
create table person (id integer primary key, name text not null);
--rollback drop table person;

--changeset quickstart:add-email
alter table person add column email text;
--rollback alter table person drop column email;

--changeset quickstart:seed
insert into person (id, name, email) values (1, 'Ada', 'ada@example.com');
--rollback delete from person where id = 1;
