-- The latest financial year FY (greatest year < year(D)) of each graded enterprise, with FY-1's revenue.
with fin as (
    select * from {{ ref('stg_financials') }}
    where year < extract(year from {{ eval_date() }})
),
fy as (
    select distinct on (f.uscc) f.*
    from fin f join {{ ref('int_population') }} p using (uscc)
    order by f.uscc, f.year desc
)
select fy.uscc, fy.year as fy, fy.revenue_wan, fy.net_profit_wan, fy.total_assets_wan,
       fy.total_liabilities_wan, fy.tax_paid_wan, fy.employees, prev.revenue_wan as prev_revenue_wan
from fy
left join fin prev on prev.uscc = fy.uscc and prev.year = fy.year - 1
