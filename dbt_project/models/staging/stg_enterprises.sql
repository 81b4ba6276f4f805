{{ stg_latest('enterprises') }}
