-- Archive bookkeeping: load runs, quarantine of refused records, per-resource watermarks.
create schema if not exists raw;
create schema if not exists audit;
create table if not exists audit.load_runs (
    load_id text primary key,
    resource text not null,
    evaluation_date date not null,
    window_start timestamptz,
    window_end timestamptz not null,
    started_at timestamptz not null,
    finished_at timestamptz,
    status text not null default 'running',
    fetched integer not null default 0,
    archived integer not null default 0,
    duplicates integer not null default 0,
    quarantined integer not null default 0,
    pages integer not null default 0,
    retries integer not null default 0,
    fetch_seconds numeric,
    load_seconds numeric,
    error text
);
create index if not exists load_runs_resource_date on audit.load_runs (resource, evaluation_date);
create table if not exists audit.quarantine (
    resource text not null,
    record_key text,
    updated_at text,
    original text not null,
    reason text not null,
    first_load_id text not null,
    first_seen_at timestamptz not null default now(),
    primary key (resource, original)
);
create table if not exists audit.watermarks (
    resource text primary key,
    high_water timestamptz not null,
    updated_at timestamptz not null default now()
);
