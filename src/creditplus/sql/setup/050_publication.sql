-- Publications: what the channels read, in tables dbt never touches (creditplus.publish fills them).
-- Each publication is a frozen copy of one night's marts; audit.publications says which one is current.
create schema if not exists audit;
create schema if not exists publication;
revoke all on schema publication from public;
-- PUBLIC gets nothing by default: no EXECUTE on the functions setup creates (here or in later scripts).
alter default privileges revoke execute on functions from public;
revoke execute on all functions in schema audit, publication from public;

create table if not exists audit.publications (
    publication_id bigint generated always as identity primary key,
    evaluation_date date not null,
    model_version text not null,
    run_id text not null,
    published_by text not null,
    published_at timestamptz not null default now(),
    is_current boolean not null default false,
    enterprise_count integer not null,
    indicator_count integer not null
);
create unique index if not exists publications_one_current on audit.publications ((true)) where is_current;
create index if not exists publications_by_date on audit.publications (evaluation_date, publication_id);

-- Columns after publication_id are marts.fct_enterprise_evaluation's, in its order.
create table if not exists publication.enterprise_evaluation (
    publication_id bigint not null references audit.publications,
    evaluation_date date not null,
    uscc text not null,
    enterprise_name text,
    legal_rep_name text,
    region_code text,
    industry_code text,
    is_leading boolean,
    model_version text not null,
    total_score integer not null,
    grade text not null,
    computed_grade text not null,
    cap_reason text,
    basic_score integer not null,
    operations_score integer not null,
    social_score integer not null,
    primary key (publication_id, uscc)
);

-- Columns after publication_id are marts.fct_indicator_score's, in its order.
create table if not exists publication.indicator_score (
    publication_id bigint not null references audit.publications,
    evaluation_date date not null,
    uscc text not null,
    model_version text not null,
    indicator_code text not null,
    indicator_name text not null,
    indicator_name_en text,
    level1 text not null,
    points integer not null,
    max_points integer not null,
    under_objection boolean not null,
    primary key (publication_id, uscc, indicator_code)
);

-- Columns after publication_id are marts.fct_indicator_explanation's, in its order: per enterprise and indicator
-- the base, band or category, each record (excluded ones too, with the decision), the floor or ceiling, and per
-- enterprise its cap listings (indicator_code null). No natural key (record and cap rows are keyed by nullable
-- columns): the mart's dbt tests hold it; readers look rows up by publication and enterprise.
create table if not exists publication.indicator_explanation (
    publication_id bigint not null references audit.publications,
    evaluation_date date not null,
    uscc text not null,
    model_version text not null,
    indicator_code text,
    item_kind text not null,
    item text,
    resource text,
    record_key text,
    record_date date,
    points integer not null,
    under_objection boolean not null,
    excluded boolean not null,
    excluded_by text
);
create index if not exists indicator_explanation_by_enterprise
    on publication.indicator_explanation (publication_id, uscc);

-- The current publication and the one previous_grade comes from: of the publications made
-- before the current one with an earlier evaluation date, the latest date, latest published on a tie.
create or replace view publication.current_publication as
select cur.publication_id, cur.evaluation_date, cur.model_version, cur.published_at,
       (select prev.publication_id
          from audit.publications prev
         where prev.publication_id < cur.publication_id and prev.evaluation_date < cur.evaluation_date
         order by prev.evaluation_date desc, prev.publication_id desc
         limit 1) as previous_publication_id
  from audit.publications cur
 where cur.is_current;

-- Tables behind the channels that other stages fill (re-evaluation notices, supply-chain
-- warnings, objection deadlines); their channel views show every row.
create table if not exists publication.regulator_notifications (
    notification_id bigint generated always as identity primary key,
    uscc text not null,
    reason text not null check (reason in ('objection_upheld', 'credit_repair', 'self_report_confirmed')),
    old_grade text,
    new_grade text,
    old_score integer,
    new_score integer,
    evaluation_date date not null,
    created_at timestamptz not null default now()
);
create table if not exists publication.supply_chain_risk_warnings (
    leading_uscc text not null,
    partner_uscc text not null,
    relation text not null check (relation in ('upstream', 'downstream')),
    warning_type text not null,
    severity text not null,
    detected_on date not null,
    detail text
);
create table if not exists publication.objection_sla (
    objection_id text primary key,
    uscc text not null,
    submitted_at timestamptz not null,
    due_on date not null,
    status text not null check (status in ('submitted', 'processing', 'upheld', 'rejected')),
    resolved_at timestamptz,
    working_days_used integer not null,
    overdue boolean not null
);
-- false when due_on was counted over provisional calendar days; rows published before the column existed
-- count as unconfirmed until the next publication replaces them.
alter table publication.objection_sla add column if not exists deadline_confirmed boolean not null default false;

-- Each time an operator made an earlier publication current again (`creditplus publication rollback`).
create table if not exists audit.publication_rollbacks (
    rolled_back_at timestamptz not null default now(),
    from_publication bigint not null references audit.publications,
    to_publication bigint not null references audit.publications
);
