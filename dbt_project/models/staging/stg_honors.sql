{{ stg_latest('honors') }}
