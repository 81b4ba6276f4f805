{{ stg_latest('patents') }}
