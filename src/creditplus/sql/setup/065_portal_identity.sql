-- 第十四条: an enterprise reads its own detail only (enterprise_self). Which enterprise a request is for comes
-- from a credential the credit office issues (`creditplus portal credential`), never from a setting the
-- reader could make itself:
--   1. enterprise_self.sign_in(credential) checks the credential (kept here only as a SHA-256 hash; unknown,
--      wrong, revoked and expired are not told apart) and returns a session token signed by the warehouse,
--      valid for 30 minutes and never past the credential;
--   2. per request, inside a transaction, enterprise_self.enter(session_token) checks the signature, the expiry
--      and that the credential still holds, then sets the verified code and a proof bound to this backend and
--      this transaction's start, both transaction-local;
--   3. the row-level security policies read enterprise_self.verified_uscc(), which answers only with a proof
--      that matches: a reader that sets creditplus.portal_uscc itself, or carries a setting into another
--      transaction (a pooled connection), sees nothing.
-- Signatures are HMAC-SHA256 written over PostgreSQL's built-in sha256() (pgcrypto, which has hmac(), is not in
-- the embedded server), keyed by random bytes only the functions' owner can read.

create table if not exists audit.portal_credentials (
    credential_id text primary key,
    uscc text not null,
    secret_sha256 bytea not null,
    issued_at timestamptz not null default now(),
    expires_at timestamptz not null,
    revoked_at timestamptz
);
create index if not exists portal_credentials_by_uscc on audit.portal_credentials (uscc);

create table if not exists audit.portal_signing_key (
    singleton boolean primary key default true check (singleton),
    inner_pad bytea not null,  -- the 64-byte key xor 0x36 (HMAC's ipad)
    outer_pad bytea not null   -- the key xor 0x5c (opad)
);
do $$
declare
    -- gen_random_uuid() draws from the server's strong random source: 4 × 122 random bits
    key bytea := decode(replace(gen_random_uuid()::text || gen_random_uuid()::text
                                || gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex');
    inner_pad bytea := key;
    outer_pad bytea := key;
begin
    if exists (select from audit.portal_signing_key) then
        return;
    end if;
    for i in 0 .. 63 loop
        inner_pad := set_byte(inner_pad, i, get_byte(key, i) # 54);
        outer_pad := set_byte(outer_pad, i, get_byte(key, i) # 92);
    end loop;
    insert into audit.portal_signing_key values (true, inner_pad, outer_pad) on conflict do nothing;
end
$$;

create or replace function audit.portal_signature(message text) returns text
    language sql stable set search_path = pg_catalog, pg_temp
    as $$ select encode(sha256(k.outer_pad || sha256(k.inner_pad || convert_to(message, 'UTF8'))), 'hex')
            from audit.portal_signing_key k $$;

-- What a transaction's proof signs: the code, this backend and this transaction's start (now()).
create or replace function audit.portal_proof(uscc text) returns text
    language sql stable set search_path = pg_catalog, pg_temp
    as $$ select audit.portal_signature(concat_ws('.', 'transaction', uscc, pg_backend_pid(),
                                                  extract(epoch from now()))) $$;

create or replace function enterprise_self.sign_in(credential text) returns text
    language plpgsql stable security definer set search_path = pg_catalog, pg_temp as $$
declare
    body text;
begin
    select concat_ws('.', c.credential_id, c.uscc,
                     floor(extract(epoch from least(c.expires_at, now() + interval '30 minutes')))::bigint)
      into body
      from audit.portal_credentials c
     where c.credential_id = split_part(credential, '.', 1)
       and c.secret_sha256 = sha256(convert_to(split_part(credential, '.', 2), 'UTF8'))
       and c.revoked_at is null and c.expires_at > now();
    return body || '.' || audit.portal_signature('session.' || body);  -- null when no credential matched
end
$$;

create or replace function enterprise_self.enter(session_token text) returns text
    language plpgsql volatile security definer set search_path = pg_catalog, pg_temp as $$
declare
    part text[] := string_to_array(session_token, '.');
    verified boolean := false;
begin
    if coalesce(cardinality(part), 0) = 4 and part[3] ~ '^[0-9]{1,12}$' then  -- before the cast below
        verified := coalesce(part[4] = audit.portal_signature('session.' || array_to_string(part[1:3], '.'))
                             and to_timestamp(part[3]::bigint) > now()
                             and exists (select from audit.portal_credentials c
                                          where c.credential_id = part[1] and c.uscc = part[2]
                                            and c.revoked_at is null and c.expires_at > now()), false);
    end if;
    perform set_config('creditplus.portal_uscc', case when verified then part[2] else '' end, true);
    perform set_config('creditplus.portal_proof', case when verified then audit.portal_proof(part[2]) else '' end,
                       true);
    return case when verified then part[2] end;
end
$$;

create or replace function enterprise_self.verified_uscc() returns text
    language sql stable security definer set search_path = pg_catalog, pg_temp
    as $$ select v.uscc from (select nullif(current_setting('creditplus.portal_uscc', true), '') as uscc) v
           where current_setting('creditplus.portal_proof', true) = audit.portal_proof(v.uscc) $$;

revoke all on function audit.portal_signature(text), audit.portal_proof(text), enterprise_self.sign_in(text),
                       enterprise_self.enter(text), enterprise_self.verified_uscc() from public;
grant execute on function enterprise_self.sign_in(text), enterprise_self.enter(text),
                          enterprise_self.verified_uscc() to enterprise_portal;
grant execute on function enterprise_self.verified_uscc() to creditplus_portal_owner;

-- Row-level security narrows only the portal owner (the table owner and superusers bypass it) on every table
-- behind enterprise_self's views; (select …) checks the proof once per query.
do $$
declare
    behind_enterprise_self text;
begin
    foreach behind_enterprise_self in array array['enterprise_evaluation', 'indicator_score', 'indicator_explanation',
                                                  'objection_sla'] loop
        execute format('alter table publication.%I enable row level security', behind_enterprise_self);
        execute format('drop policy if exists granted_readers on publication.%I', behind_enterprise_self);
        execute format('create policy granted_readers on publication.%I for select using (true)',
                       behind_enterprise_self);
        execute format('drop policy if exists portal_own_enterprise on publication.%I', behind_enterprise_self);
        execute format('create policy portal_own_enterprise on publication.%I as restrictive for select'
                       ' to creditplus_portal_owner using (uscc = (select enterprise_self.verified_uscc()))',
                       behind_enterprise_self);
    end loop;
end
$$;
