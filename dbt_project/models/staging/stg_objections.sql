{{ stg_latest('objections') }}
