-- Data-quality gate (creditplus.quality, suites in expectations/suites.py).
create schema if not exists audit;

-- What each suite measured, computed once per run in SQL (one row per subject: a resource,
-- or 'marts'); Great Expectations validates these small rows, never the data itself.
create table if not exists audit.quality_metrics (
    run_id text not null,
    evaluation_date date not null,
    suite text not null,
    subject text not null,
    metrics jsonb not null,
    computed_at timestamptz not null default now(),
    primary key (run_id, suite, subject)
);

-- Every expectation result of every gate run; a retried task overwrites its own rows.
create table if not exists audit.quality_results (
    run_id text not null,
    evaluation_date date not null,
    suite text not null,
    expectation text not null,
    severity text not null check (severity in ('critical', 'warning')),
    success boolean not null,
    observed_value jsonb,
    observed text,                 -- the same, readable: "penalties=0.35; safety_accidents=0.4"
    checked_at timestamptz not null default now(),
    primary key (run_id, suite, expectation)
);
create index if not exists quality_results_date on audit.quality_results (evaluation_date, suite);

-- GB 32100-2015: 18 characters of 0-9A-HJ-NPQRTUWXY, the last the mod-31 check character
-- (weights 3^i mod 31). One expression, so PostgreSQL inlines it: ~1 µs a row over millions.
-- strpos() is the character's value + 1, hence the minus sum of the weights (305).
create or replace function audit.uscc_is_valid(code text) returns boolean
language sql immutable parallel safe as $$
    select code ~ '^[0-9A-HJ-NPQRTUWXY]{18}$'
       and substr('0123456789ABCDEFGHJKLMNPQRTUWXY',
                  (31 - ((
                        1 * strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code,  1, 1))
                     +  3 * strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code,  2, 1))
                     +  9 * strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code,  3, 1))
                     + 27 * strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code,  4, 1))
                     + 19 * strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code,  5, 1))
                     + 26 * strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code,  6, 1))
                     + 16 * strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code,  7, 1))
                     + 17 * strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code,  8, 1))
                     + 20 * strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code,  9, 1))
                     + 29 * strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 10, 1))
                     + 25 * strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 11, 1))
                     + 13 * strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 12, 1))
                     +  8 * strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 13, 1))
                     + 24 * strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 14, 1))
                     + 10 * strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 15, 1))
                     + 30 * strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 16, 1))
                     + 28 * strpos('0123456789ABCDEFGHJKLMNPQRTUWXY', substr(code, 17, 1))
                  ) - 305) % 31) % 31 + 1, 1) = substr(code, 18, 1)
$$;
