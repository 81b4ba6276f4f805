{{ stg_latest('self_reports') }}
