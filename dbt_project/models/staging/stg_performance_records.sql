{{ stg_latest('performance_records') }}
