-- Channel schemas, views and group roles (spec: publication-channels.md; registry: creditplus/channels.py).
-- Views read only publication/audit tables, never marts, so a `dbt build` cannot drop them. They run with
-- their owner's rights (readers need nothing on publication) and are security barriers, so a reader's own
-- functions never see rows the view filters out (other grades, other publications, other enterprises).

-- PUBLIC keeps none of PostgreSQL's defaults: no CONNECT or TEMPORARY on the database (a reader cannot create
-- temporary objects, and only login users granted in this database connect), nothing on schema public.
revoke all on schema public from public;
do $$ begin execute format('revoke all on database %I from public', current_database()); end $$;
create schema if not exists gov_share;
create schema if not exists finance;
create schema if not exists association;
create schema if not exists public_query;
create schema if not exists enterprise_self;
create schema if not exists regulator;
create schema if not exists supply_chain;
create schema if not exists credit_office;

-- The current publication's evaluation, with published_at and previous_grade (publication-internal).
create or replace view publication.current_enterprise_evaluation as
select e.publication_id, e.evaluation_date, e.uscc, e.enterprise_name, e.legal_rep_name, e.region_code,
       e.industry_code, e.is_leading, e.model_version, e.total_score, e.grade, e.computed_grade, e.cap_reason,
       e.basic_score, e.operations_score, e.social_score, c.published_at, prev.grade as previous_grade
  from publication.current_publication c
  join publication.enterprise_evaluation e on e.publication_id = c.publication_id
  left join publication.enterprise_evaluation prev
         on prev.publication_id = c.previous_publication_id and prev.uscc = e.uscc;

create or replace view publication.current_indicator_score as
select i.publication_id, i.evaluation_date, i.uscc, i.model_version, i.indicator_code, i.indicator_name,
       i.indicator_name_en, i.level1, i.points, i.max_points, i.under_objection
  from publication.current_publication c
  join publication.indicator_score i on i.publication_id = c.publication_id;

-- Lists creditplus.publish writes per publication beside the evaluation: the summary per leading enterprise
-- for 工信局 (评价细则 第一条), and the night's references the warehouse cannot resolve
-- (marts.fct_unresolved_references) for the credit office.
create table if not exists publication.supply_chain_summary (
    publication_id bigint not null references audit.publications,
    evaluation_date date not null,
    leading_uscc text not null,
    partners integer not null,
    share_weighted_score numeric(6, 1),
    high_risk_partners integer not null,
    new_warnings integer not null,
    primary key (publication_id, leading_uscc)
);
create table if not exists publication.unresolved_references (
    publication_id bigint not null references audit.publications,
    evaluation_date date not null,
    resource text not null,
    record_key text not null,
    reference text,
    reason text not null,
    detail text
);
create index if not exists unresolved_references_by_publication
    on publication.unresolved_references (publication_id);

create or replace view publication.current_supply_chain_summary as
select s.leading_uscc, s.evaluation_date, s.partners, s.share_weighted_score, s.high_risk_partners, s.new_warnings,
       c.published_at
  from publication.current_publication c
  join publication.supply_chain_summary s on s.publication_id = c.publication_id;

create or replace view publication.current_unresolved_references as
select u.evaluation_date, u.resource, u.record_key, u.reference, u.reason, u.detail, c.published_at
  from publication.current_publication c
  join publication.unresolved_references u on u.publication_id = c.publication_id;

create or replace view gov_share.enterprise_evaluation with (security_barrier) as
select uscc, enterprise_name, region_code, industry_code, is_leading, evaluation_date, model_version,
       total_score, grade, computed_grade, cap_reason, basic_score, operations_score, social_score,
       previous_grade, published_at
  from publication.current_enterprise_evaluation;

create or replace view gov_share.indicator_scores with (security_barrier) as
select uscc, evaluation_date, indicator_code, indicator_name, points, max_points, under_objection
  from publication.current_indicator_score;

create or replace view finance.xinyidai_recommendations with (security_barrier) as
select uscc, enterprise_name, legal_rep_name, total_score, grade, evaluation_date, published_at
  from publication.current_enterprise_evaluation
 where grade = 'A';

create or replace view finance.enterprise_grades with (security_barrier) as
select uscc, enterprise_name, grade, total_score, evaluation_date, published_at
  from publication.current_enterprise_evaluation;

create or replace view association.enterprise_grades with (security_barrier) as
select uscc, enterprise_name, industry_code, region_code, grade, basic_score, operations_score, social_score,
       evaluation_date
  from publication.current_enterprise_evaluation;

create or replace view public_query.credit_grades with (security_barrier) as
select uscc, enterprise_name, grade, evaluation_date
  from publication.current_enterprise_evaluation;

create or replace view regulator.notifications with (security_barrier) as
select notification_id, uscc, reason, old_grade, new_grade, old_score, new_score, evaluation_date, created_at
  from publication.regulator_notifications;

create or replace view supply_chain.risk_warnings with (security_barrier) as
select leading_uscc, partner_uscc, relation, warning_type, severity, detected_on, detail
  from publication.supply_chain_risk_warnings;

create or replace view supply_chain.partner_summary with (security_barrier) as
select leading_uscc, partners, share_weighted_score, high_risk_partners, new_warnings, evaluation_date, published_at
  from publication.current_supply_chain_summary;

create or replace view credit_office.objection_sla with (security_barrier) as
select objection_id, uscc, submitted_at, due_on, status, resolved_at, working_days_used, overdue,
       deadline_confirmed
  from publication.objection_sla;

create or replace view credit_office.unresolved_references with (security_barrier) as
select resource, record_key, reference, reason as unresolved_reason, detail, evaluation_date, published_at
  from publication.current_unresolved_references;

-- 第十四条: the enterprise sees its own detail only, one row per indicator. The view is owned by
-- creditplus_portal_owner (no BYPASSRLS, ownership given below) and reads the publication tables directly,
-- so the row-level security policies at the end apply; a session that set no uscc sees nothing.
create or replace view enterprise_self.evaluation_detail with (security_barrier) as
select e.uscc, e.enterprise_name, e.region_code, e.industry_code, e.is_leading, e.evaluation_date,
       e.model_version, e.total_score, e.grade, e.computed_grade, e.cap_reason, e.basic_score,
       e.operations_score, e.social_score, prev.grade as previous_grade, c.published_at,
       i.indicator_code, i.indicator_name, i.indicator_name_en, i.level1, i.points, i.max_points,
       i.under_objection
  from publication.current_publication c
  join publication.enterprise_evaluation e on e.publication_id = c.publication_id
  join publication.indicator_score i on i.publication_id = e.publication_id and i.uscc = e.uscc
  left join publication.enterprise_evaluation prev
         on prev.publication_id = c.previous_publication_id and prev.uscc = e.uscc;

-- Issue 14, "every point explained": the records behind each of the enterprise's deductions, bonuses and caps,
-- excluded ones with the repair or objection that excluded them; per indicator the rows sum to its points.
-- Owned by creditplus_portal_owner and read under row-level security, as evaluation_detail.
create or replace view enterprise_self.indicator_explanations with (security_barrier) as
select x.uscc, x.evaluation_date, x.indicator_code, i.indicator_name, x.item_kind, x.item, x.resource,
       x.record_key, x.record_date, x.points as points_moved, x.under_objection, x.excluded, x.excluded_by,
       c.published_at
  from publication.current_publication c
  join publication.indicator_explanation x on x.publication_id = c.publication_id
  left join publication.indicator_score i
         on i.publication_id = x.publication_id and i.uscc = x.uscc and i.indicator_code = x.indicator_code;

-- 第十四条: the enterprise's own objections with their due dates and status (as credit_office sees them).
create or replace view enterprise_self.objections with (security_barrier) as
select objection_id, uscc, submitted_at, due_on, status, resolved_at, working_days_used, overdue
  from publication.objection_sla;

-- Group roles (cluster-wide, so created only when missing and altered only when wrong: another database's
-- setup may be doing the same). Each gets USAGE on its own schema and SELECT on its views; PUBLIC nothing.
do $$
declare
    ch record;
begin
    for ch in select * from (values ('gov_share', 'gov_share_reader'), ('finance', 'finance_reader'),
                                    ('association', 'association_reader'), ('public_query', 'public_reader'),
                                    ('enterprise_self', 'enterprise_portal'), ('regulator', 'regulator_reader'),
                                    ('supply_chain', 'supply_chain_reader'), ('credit_office', 'credit_office'),
                                    (null, 'creditplus_portal_owner'))
                       as v(schema_name, role_name) loop
        if not exists (select from pg_roles where rolname = ch.role_name) then
            begin
                execute format('create role %I nologin', ch.role_name);
            exception when duplicate_object or unique_violation then
                null;
            end;
        elsif exists (select from pg_roles where rolname = ch.role_name
                         and (rolcanlogin or rolsuper or rolcreatedb or rolcreaterole or rolreplication
                              or rolbypassrls)) then
            execute format('alter role %I nologin nosuperuser nocreatedb nocreaterole noreplication nobypassrls',
                           ch.role_name);
        end if;
        continue when ch.schema_name is null;
        execute format('revoke all on schema %I from public', ch.schema_name);
        execute format('revoke all on all tables in schema %I from public', ch.schema_name);
        -- CONNECT is per login user and database (`creditplus access grant`), never the group's: the group
        -- roles are cluster-wide, so a group's CONNECT would let a member into every warehouse of the server.
        execute format('revoke connect on database %I from %I', current_database(), ch.role_name);
        execute format('grant usage on schema %I to %I', ch.schema_name, ch.role_name);
        execute format('grant select on all tables in schema %I to %I', ch.schema_name, ch.role_name);
    end loop;
end
$$;

alter view enterprise_self.evaluation_detail owner to creditplus_portal_owner;
alter view enterprise_self.indicator_explanations owner to creditplus_portal_owner;
alter view enterprise_self.objections owner to creditplus_portal_owner;
grant usage on schema publication to creditplus_portal_owner;
grant select on publication.current_publication, publication.enterprise_evaluation,
                publication.indicator_score, publication.indicator_explanation, publication.objection_sla
   to creditplus_portal_owner;
