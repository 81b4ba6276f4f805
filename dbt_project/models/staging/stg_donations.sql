{{ stg_latest('donations') }}
