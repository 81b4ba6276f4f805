{{ stg_latest('penalties') }}
