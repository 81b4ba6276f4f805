-- Re-evaluation notices and supply-chain warnings, written by creditplus.publish in the transaction of the
-- publication that finds them. Natural keys make every notice and warning fire once: a rerun adds nothing.

-- Decisions (upheld objection, approved repair, confirmed self-report) already taken into a publication.
create table if not exists publication.rights_decisions_seen (
    source_resource text not null,
    source_id text not null,
    uscc text not null,
    reason text not null,
    decided_on date not null,
    publication_id bigint not null references audit.publications,
    primary key (source_resource, source_id)
);
alter table publication.regulator_notifications
    add column if not exists publication_id bigint references audit.publications;

-- Warning types and their base level (1 low .. 4 critical) before the partner's share is weighed in.
create table if not exists publication.warning_types (
    warning_type text primary key,
    base_level integer not null check (base_level between 1 and 4),
    description text not null
);
insert into publication.warning_types (warning_type, base_level, description) values
    ('grade_fell_to_e', 3, 'the partner''s grade fell to E'),
    ('grade_fell_to_d', 2, 'the partner''s grade fell to D'),
    ('grade_fell_two_or_more', 2, 'the partner''s grade fell by two grades or more'),
    ('listed_serious_dishonesty', 3, 'the partner is on the serious dishonesty list (严重失信主体名单)'),
    ('listed_dishonest_debtor', 3, 'the partner is a dishonest judgment debtor (失信被执行人)'),
    ('listed_abnormal_operations', 1, 'the partner is on the abnormal operations list (经营异常名录)'),
    ('severe_penalty', 2, 'a severe administrative penalty of the partner is in publicity'),
    ('deregistered', 3, 'the partner''s registration was revoked or cancelled')
on conflict (warning_type) do update set base_level = excluded.base_level, description = excluded.description;

-- Severity weighs the partner's share: +1 level from 30 %, -1 below 5 % (or unknown), within low..critical.
create or replace function publication.warning_severity(base_level integer, share_pct numeric) returns text
language sql immutable as $$
    select (array['low', 'medium', 'high', 'critical'])[
        greatest(1, least(4, base_level + case when share_pct >= 30 then 1 when coalesce(share_pct, 0) < 5 then -1
                                               else 0 end))]
$$;

alter table publication.supply_chain_risk_warnings
    add column if not exists warning_key text,
    add column if not exists publication_id bigint references audit.publications;
create unique index if not exists supply_chain_risk_warnings_once
    on publication.supply_chain_risk_warnings (leading_uscc, partner_uscc, relation, warning_type, warning_key);
