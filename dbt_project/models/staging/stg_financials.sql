{{ stg_latest('financials') }}
