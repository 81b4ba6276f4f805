-- Archive bookkeeping: load runs, quarantine of refused records, per-resource watermarks.
create schema if not exists raw;
create schema if not exists audit;

-- One row per extraction attempt of a resource for an evaluation date: a rerun of the
-- same night adds attempt n+1 (the history of a failed night and its resumption stays
-- readable); the night's outcome is its latest attempt (``audit.latest_load_runs``).
create table if not exists audit.load_runs (
    load_id text primary key,                 -- '<evaluation_date>/<resource>/<attempt>'
    resource text not null,
    evaluation_date date not null,
    attempt integer not null,
    window_start timestamptz,                 -- exclusive; null = from the beginning
    window_end timestamptz not null,          -- exclusive: cutoff(D) = D+1 00:00 +08:00
    started_at timestamptz not null,
    finished_at timestamptz,
    status text not null default 'running' check (status in ('running', 'succeeded', 'failed')),
    fetched integer not null default 0,
    archived integer not null default 0,
    duplicates integer not null default 0,
    quarantined integer not null default 0,
    pages integer not null default 0,
    retries integer not null default 0,
    fetch_seconds numeric,
    load_seconds numeric,
    wall_seconds numeric,
    error text,
    unique (resource, evaluation_date, attempt)
);
-- versions archived by the second request of the window's last 6 hours (held back by the platform's
-- replication lag from the first): grades of D include them
alter table audit.load_runs add column if not exists late integer not null default 0;

create or replace view audit.latest_load_runs as
select distinct on (resource, evaluation_date) *
from audit.load_runs
order by resource, evaluation_date, attempt desc;

-- Refused record versions, once per resource and original text (the unique index is on
-- md5(original) because a btree entry cannot hold an arbitrarily long text).
create table if not exists audit.quarantine (
    resource text not null,
    record_key text,                          -- key values joined with '|', when present
    updated_at text,                          -- as received, when present
    original text not null,
    reason text not null,
    first_load_id text not null,
    first_seen_at timestamptz not null default now()
);
create unique index if not exists quarantine_resource_original on audit.quarantine (resource, md5(original));

-- Exclusive upper bound of the last successful extraction window per resource;
-- it only moves forward (greatest()), so a backfill of an earlier night never rewinds it.
create table if not exists audit.watermarks (
    resource text primary key,
    high_water timestamptz not null,
    updated_at timestamptz not null default now()
);

-- One row per failed try of a creditplus Airflow task, written by its failure callback
-- (orchestration.record_task_failure): why a night failed, readable without Airflow's logs.
create table if not exists audit.task_failures (
    dag_id text not null,
    run_id text not null,
    task_id text not null,
    map_index integer not null,
    try_number integer not null,
    error text not null,
    failed_at timestamptz not null default now(),
    primary key (dag_id, run_id, task_id, map_index, try_number)
);
