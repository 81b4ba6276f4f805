-- The numeric (num / den, den > 0; ratios are never divided) and categorical features of the band and
-- category indicators, one row per graded enterprise and indicator; no row = the feature is missing.
with pop as (select * from {{ ref('int_population') }}),
fin as (select * from {{ ref('int_financial_features') }}),
ratings as (select * from {{ ref('int_ratings') }}),
features as (
    select uscc, 'B1' as indicator_code,
           extract(year from age({{ eval_date() }}, established_on))::numeric as num, 1::numeric as den, null::text as category
    from pop
    union all select uscc, 'B2', reg_capital_wan, 1, null from pop where reg_capital_wan is not null
    union all select uscc, 'B3', null, null, reg_status from pop
    union all select uscc, 'O1', revenue_wan, 1, null from fin where revenue_wan is not null
    -- O2: growth % = (rev FY - rev FY-1) * 100 / rev FY-1
    union all select uscc, 'O2', (revenue_wan - prev_revenue_wan) * 100, prev_revenue_wan, null
              from fin where revenue_wan is not null and prev_revenue_wan > 0
    -- O3: net margin % = net profit * 100 / revenue
    union all select uscc, 'O3', net_profit_wan * 100, revenue_wan, null
              from fin where net_profit_wan is not null and revenue_wan > 0
    -- O4: debt ratio % = liabilities * 100 / assets
    union all select uscc, 'O4', total_liabilities_wan * 100, total_assets_wan, null
              from fin where total_liabilities_wan is not null and total_assets_wan > 0
    union all select uscc, 'O5', null, null, tax_rating from ratings where tax_rating is not null
    union all select uscc, 'O6', tax_paid_wan, 1, null from fin where tax_paid_wan is not null
    -- S1: months in arrears among the window's calendar months before D's month (missing: no row there)
    union all select si.uscc, 'S1', count(*) filter (where si.arrears), 1, null
              from {{ ref('stg_social_insurance') }} si join pop using (uscc)
              where si.month >= {{ window_start('S1', "date_trunc('month', " ~ eval_date() ~ ")") }}
                and si.month < date_trunc('month', {{ eval_date() }})
              group by si.uscc
    union all select uscc, 'S2', employees, 1, null from fin where employees is not null
    union all select uscc, 'S3', null, null, environmental_rating from ratings where environmental_rating is not null
    -- S6: sum of donations (with confirmed self-reports) within the window; none = 0
    union all select pop.uscc, 'S6', coalesce(sum(d.amount_yuan), 0), 1, null
              from pop left join {{ ref('int_donations') }} d
                on d.uscc = pop.uscc and {{ within_window('d.donated_on', 'S6') }}
              group by pop.uscc
)
select * from features
